"""The command-line options ``tools/train.py`` and ``tools/test.py`` share."""
from mmengine.config import Config

def add_runner_arguments(parser) -> None:
    """The command-line options ``tools/train.py`` and ``tools/test.py``
    share: ``--work-dir``, ``--cfg-options``, ``--launcher``,
    ``--local-rank``."""
    from mmengine.config import DictAction
    parser.add_argument('--work-dir', help='folder for logs and outputs')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_runner_config(args) -> Config:
    """Load ``args.config`` and apply the shared options of
    :func:`add_runner_arguments` (the work dir defaults to
    ``work_dirs/<config name>``); sets ``LOCAL_RANK`` if the launcher did
    not."""
    import os
    import os.path as osp
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg
