"""One training step of each published config, at its real input size, with
random weights (no teacher or student checkpoint, nothing downloaded), on
random images: the check that every config builds and steps on a device.

    python tools/gpu_check_steps.py [--device cuda] [--configs A.py B.py]
        [--size-scale 1.0] [--ddp]

- Sizes: Cityscapes crops 512x1024, ADE20K 512x512, COCO 800x1333, the
  fixed-size FGFI hint config 800x1344, VOC 600x1000; the batch per GPU of
  each config's train_dataloader (``--batch-size`` overrides it).
  ``--size-scale 0.125`` shrinks them (the CPU dry run of
  tools/gpu_check.sh; the holistic critic needs >= 512x512 inputs and the
  hint config its fixed size, so those run at full size there). On CPU the
  configs' SyncBN layers are reverted to BN (SyncBN runs on GPUs only).
- The optimizers are the configs' own (``prepare_config``: the student
  checkpoint hook aside, the same as tools/train.py), ``--amp`` turns them
  into AmpOptimWrapper (fp16).
- ``--ddp``: under ``torchrun`` (NCCL on GPUs, gloo on CPU), the model is
  wrapped as tools/train.py wraps it for ``--launcher pytorch`` (mmengine's
  default wrapper, or ``MMSeparateDistributedDataParallel`` for distillers
  with a critic) and stepped through the wrapper.

Prints one line per config (step time, peak GPU memory) and exits non-zero
if any config fails.
"""
import argparse
import copy
import glob
import os
import os.path as osp
import sys
import time
import traceback

import torch

HERE = osp.dirname(osp.dirname(osp.abspath(__file__)))
PUBLISHED = ('skd', 'fgfi', 'cwd')


def input_size(path: str):
    """``(h, w)`` of a published config's training inputs, from its
    dataset (named in the file name)."""
    name = osp.basename(path)
    for key, size in (('hint', (800, 1344)), ('cityscapes', (512, 1024)),
                      ('ade20k', (512, 512)), ('coco', (800, 1333)),
                      ('voc', (600, 1000))):
        if key in name:
            return size
    raise ValueError(f'{path}: no known dataset in the file name.')


def random_batch(cfg, size, batch_size, scope: str):
    """A random batch as the dataloader gives it, images of ``size``."""
    from mmkd.testing import demo_det_inputs
    h, w = size
    if scope == 'mmseg':
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        samples = []
        for _ in range(batch_size):
            sample = SegDataSample(metainfo=dict(
                img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
            sample.gt_sem_seg = PixelData(data=torch.randint(
                0, _num_classes(cfg), (1, h, w)))
            samples.append(sample)
        inputs = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8)
                  for _ in range(batch_size)]
        return dict(inputs=inputs, data_samples=samples)
    boxes = [[[0.1 * w, 0.1 * h, 0.5 * w, 0.6 * h],
              [0.4 * w, 0.3 * h, 0.9 * w, 0.8 * h]]] * batch_size
    return demo_det_inputs(boxes, [size] * batch_size,
                           num_classes=_num_classes(cfg))


def _num_classes(cfg) -> int:
    model = cfg.model.get('student', cfg.model)
    head = model.get('decode_head') or model.get('roi_head', {}).get(
        'bbox_head') or model.get('bbox_head')
    return int(head['num_classes'])


def build(path, device, amp, size_scale, batch_size=None):
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope
    from mmengine.optim import build_optim_wrapper

    from mmkd.engine.runner_config import prepare_config
    cfg = Config.fromfile(path)
    if 'student' in cfg.model:
        cfg.model.teacher_checkpoint = None
        cfg.model.student_checkpoint = None
    prepare_config(cfg, amp=amp)
    scope = cfg.get('default_scope', 'mmseg')
    size = tuple(max(32, int(s * size_scale) // 32 * 32)
                 for s in input_size(path))
    preprocessor = (cfg.model.get('student', cfg.model)
                    .get('data_preprocessor', {}))
    if scope == 'mmseg' and preprocessor.get('size'):
        # the crop size the data preprocessor pads to
        for model_cfg in (cfg.model, cfg.model.get('student', {})):
            if model_cfg.get('data_preprocessor'):
                model_cfg.data_preprocessor.size = size
    batch_size = batch_size or cfg.train_dataloader.batch_size
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
        if device == 'cpu':
            # the published configs' SyncBN runs on GPUs only
            from mmengine.model import revert_sync_batchnorm
            model = revert_sync_batchnorm(model)
        model = model.to(device).train()
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        data = random_batch(cfg, size, batch_size, scope)
    return cfg, model, optim_wrapper, data, size, batch_size


def wrap(cfg, model, device):
    from mmengine.registry import MODEL_WRAPPERS
    wrapper = copy.deepcopy(cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False)))
    wrapper.setdefault('device_ids', [torch.cuda.current_device()]
                       if device == 'cuda' else None)
    return MODEL_WRAPPERS.build(wrapper, default_args=dict(module=model))


def step(path, args) -> str:
    cfg, model, optim_wrapper, data, size, batch_size = build(
        path, args.device, args.amp, args.size_scale, args.batch_size)
    if args.ddp:
        model = wrap(cfg, model, args.device)
    if args.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    start = time.perf_counter()
    log_vars = model.train_step(data, optim_wrapper)
    if args.device == 'cuda':
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    bad = [k for k, v in log_vars.items()
           if not torch.isfinite(torch.as_tensor(v).detach()).all()]
    if bad:
        raise FloatingPointError(f'non-finite {bad}')
    memory = (f', peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GB'
              if args.device == 'cuda' else '')
    return (f'{size[0]}x{size[1]} x{batch_size}: step {seconds:.2f} s'
            f'{memory}, loss {float(log_vars["loss"]):.3f}')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--configs', nargs='*',
                        help='default: every config of configs/{skd,fgfi,'
                        'cwd} (not _base_)')
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--amp', action='store_true')
    parser.add_argument('--ddp', action='store_true',
                        help='step through the distributed wrapper (run '
                        'under torchrun)')
    parser.add_argument('--size-scale', type=float, default=1.0,
                        help='scale the input sizes (the holistic critic '
                        'needs >= 512x512 inputs, the hint config its '
                        'fixed size)')
    parser.add_argument('--batch-size', type=int,
                        help="default: each config's batch per GPU")
    args = parser.parse_args()
    import mmkd  # noqa: F401  (registries)
    if args.ddp:
        import torch.distributed as dist
        dist.init_process_group('nccl' if args.device == 'cuda' else 'gloo')
        if args.device == 'cuda':
            torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
    configs = args.configs or sorted(
        p for d in PUBLISHED
        for p in glob.glob(osp.join(HERE, 'configs', d, '*.py')))
    failed = []
    for path in configs:
        name = osp.relpath(path, HERE)
        try:
            print(f'OK   {name}: {step(path, args)}', flush=True)
        except Exception:  # noqa: BLE001  (report every config)
            failed.append(name)
            print(f'FAIL {name}:\n{traceback.format_exc()}', flush=True)
        if args.device == 'cuda':
            torch.cuda.empty_cache()
    print(f'{len(configs) - len(failed)}/{len(configs)} configs stepped'
          + (f'; failed: {failed}' if failed else ''))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
