"""Model configs that build without the network: for tests and benchmarks,
whose figures do not depend on the weights."""
import copy
from typing import Any


def offline_model_config(model_cfg: Any) -> Any:
    """A copy of a model config with no pretrained weights (``pretrained``
    and ``init_cfg=dict(type='Pretrained')`` dropped, at every depth:
    nothing is downloaded) and ``BN`` instead of ``SyncBN`` (one process)."""
    model_cfg = copy.deepcopy(model_cfg)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get('type') == 'SyncBN':
                node['type'] = 'BN'
            if node.get('pretrained') is not None:
                node['pretrained'] = None
            init_cfg = node.get('init_cfg')
            if isinstance(init_cfg, dict) and \
                    init_cfg.get('type') == 'Pretrained':
                node['init_cfg'] = None
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(model_cfg)
    return model_cfg
