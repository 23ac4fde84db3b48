"""Draw FGFI imitation masks over the image they were computed for: one
panel per feature level, the ground-truth boxes drawn, as in the paper's
figure of the imitation region (Wang et al., CVPR 2019, Fig. 3)."""
import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

from mmkd.utils.config_checks import ConfigValueError

StrideType = Union[int, float, Tuple[float, float]]

#: Colour of the imitated locations (RGB) and of the box outlines.
MASK_COLOR = (30, 110, 255)
BOX_COLOR = (255, 220, 0)


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _stride_wh(stride: Optional[StrideType], image_hw: Tuple[int, int],
               mask_hw: Tuple[int, int]) -> Tuple[float, float]:
    if stride is None:  # the level covers the image
        return image_hw[1] / mask_hw[1], image_hw[0] / mask_hw[0]
    if isinstance(stride, (int, float)):
        return float(stride), float(stride)
    return float(stride[0]), float(stride[1])


def _cells(length: int, stride: float, cells: int,
           scale: int) -> Tuple[np.ndarray, np.ndarray]:
    """Per pixel of a panel axis: the level cell it lies in, and whether that
    cell exists (a level may cover less than the image)."""
    index = np.floor(np.arange(length * scale) / (stride * scale)).astype(
        np.int64)
    inside = index < cells
    return np.minimum(index, cells - 1), inside


def draw_imitation_masks(image: np.ndarray,
                         masks: Sequence,
                         boxes=None,
                         strides: Optional[Sequence[StrideType]] = None,
                         titles: Optional[Sequence[str]] = None,
                         alpha: float = 0.5,
                         scale: int = 1,
                         ncols: Optional[int] = None,
                         title_height: int = 16,
                         gap: int = 4) -> np.ndarray:
    """Overlay each level's imitation mask on the image, one panel a level.

    The location ``(y, x)`` of a level of stride ``(s_w, s_h)`` is painted
    over the pixels ``[y s_h, (y + 1) s_h) x [x s_w, (x + 1) s_w)`` (the
    convention of :func:`mmkd.task_modules.valid_location_masks` and of the
    ``'gt'`` region), blended with :data:`MASK_COLOR` at ``alpha``. Boxes are
    drawn as 1-pixel outlines in :data:`BOX_COLOR`.

    Layout: panels left to right, ``ncols`` per row, ``gap`` white pixels
    between them; above each panel a ``title_height``-pixel strip with its
    title. Panel ``l`` (row ``l // ncols``, column ``l % ncols``) has its
    top-left image pixel at ``(row * (title_height + H * scale + gap) +
    title_height, col * (W * scale + gap))``.

    Args:
        image (np.ndarray): ``(H, W, 3)`` uint8 RGB, the network input the
            masks were computed on (boxes in its coordinates).
        masks (Sequence[Tensor | np.ndarray]): One ``(H_l, W_l)`` bool mask
            per level.
        boxes (Tensor | np.ndarray, optional): ``(G, 4)`` ``x1, y1, x2, y2``.
        strides (Sequence[int | tuple], optional): Per level, an int or
            ``(s_w, s_h)`` (mmdet's ``AnchorGenerator.strides``). Defaults to
            ``image size / mask size`` (the level spans the image).
        titles (Sequence[str], optional): One per level. Defaults to
            ``'L<l> s<stride>: <kept>/<locations>'``.
        alpha (float): Opacity of the mask colour. Defaults to 0.5.
        scale (int): Integer upscaling of the panels (nearest), for small
            images. Defaults to 1.
        ncols (int, optional): Panels per row. Defaults to ``min(levels,
            3)``.
        title_height (int): Height of each title strip; 0 for none.
        gap (int): White pixels between panels.

    Returns:
        np.ndarray: ``(rows * (title_height + H * scale + gap) - gap, cols *
        (W * scale + gap) - gap, 3)`` uint8 RGB.
    """
    import cv2

    image = _as_numpy(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError('draw_imitation_masks: expected an (H, W, 3) uint8 '
                         f'RGB image, found {image.shape} {image.dtype}.')
    masks = [_as_numpy(m).astype(bool) for m in masks]
    if not masks:
        raise ValueError('draw_imitation_masks: got no mask levels.')
    if any(m.ndim != 2 for m in masks):
        raise ValueError('draw_imitation_masks: each mask must be (H_l, '
                         f'W_l), found {[m.shape for m in masks]}.')
    if strides is not None and len(strides) != len(masks):
        raise ConfigValueError(
            'strides', f'{len(masks)} strides, one per mask level',
            f'{len(strides)} strides {list(strides)}',
            "Give the anchor generator's strides of the levels the masks "
            'are of, or None (image size / mask size).',
            owner='draw_imitation_masks')
    scale = int(scale)
    if scale < 1:
        raise ValueError(f'draw_imitation_masks: scale must be >= 1, found '
                         f'{scale}.')
    from mmdet.structures.bbox import get_box_tensor
    boxes = (np.zeros((0, 4)) if boxes is None else
             _as_numpy(get_box_tensor(boxes)).reshape(-1, 4))
    h, w = image.shape[:2]
    ncols = min(len(masks), 3) if ncols is None else int(ncols)
    nrows = int(math.ceil(len(masks) / ncols))
    panel_h, panel_w = title_height + h * scale, w * scale
    canvas = np.full((nrows * (panel_h + gap) - gap,
                      ncols * (panel_w + gap) - gap, 3), 255, np.uint8)
    base = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    color = np.array(MASK_COLOR, np.float32)

    for lvl, mask in enumerate(masks):
        sw, sh = _stride_wh(None if strides is None else strides[lvl],
                            (h, w), mask.shape)
        rows, rows_in = _cells(h, sh, mask.shape[0], scale)
        cols, cols_in = _cells(w, sw, mask.shape[1], scale)
        painted = mask[rows[:, None], cols[None, :]] & (
            rows_in[:, None] & cols_in[None, :])
        panel = base.copy()
        panel[painted] = np.round((1 - alpha) * panel[painted] +
                                  alpha * color).astype(np.uint8)
        for x1, y1, x2, y2 in boxes.tolist():
            cv2.rectangle(panel, (int(round(x1 * scale)),
                                  int(round(y1 * scale))),
                          (int(round(x2 * scale)) - 1,
                           int(round(y2 * scale)) - 1), BOX_COLOR, 1)
        row, col = divmod(lvl, ncols)
        top, left = row * (panel_h + gap), col * (panel_w + gap)
        canvas[top + title_height:top + panel_h, left:left + panel_w] = panel
        if title_height > 0:
            title = (titles[lvl] if titles is not None else
                     f'L{lvl} s{sw:g}: {int(mask.sum())}/{mask.size}')
            # drawn in its own strip: a long title is clipped to its panel
            strip = np.full((title_height, panel_w, 3), 255, np.uint8)
            cv2.putText(strip, title, (2, title_height - 4),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1,
                        cv2.LINE_AA)
            canvas[top:top + title_height, left:left + panel_w] = strip
    return canvas
