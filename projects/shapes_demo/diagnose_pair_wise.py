"""What the SKD pair-wise term's graph looks like in the teacher and in
trained students of the demo: the measurement behind "the fork" in
projects/shapes_demo/docs/segmentation_setting.md.

    python projects/shapes_demo/diagnose_pair_wise.py
        [--work-dir work_dirs/shapes_demo] [--roles student pair all]
        [--split val] [--batches N]

On the scenes of a split it takes, from the teacher and from every report
run of the given roles (``report/results.json``; every seed), the feature
the pair-wise variant's config distils (its tap and node size), pools it
into nodes as the loss does, and prints

- the mean cosine similarity of two nodes of one image by the classes of the
  two nodes (the graph's edges the term matches to the teacher's),
- the mean norm of a node relative to the mean node norm of its image, by
  class (near 0: the node's features are switched off).

A node is labelled with a class when at least 75 % of its pixels have it.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from shapes_demo.tasks import CONFIGS, TASKS  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/shapes_demo')
    parser.add_argument('--roles', nargs='+', default=['student', 'pair',
                                                       'all'])
    parser.add_argument('--split', choices=['val', 'test'], default='val')
    parser.add_argument('--batches', type=int, default=None,
                        help='only the first N batches of the split')
    args = parser.parse_args()
    if args.batches is not None and args.batches < 1:
        parser.error(f'--batches must be at least 1, got {args.batches}')
    return args


def main() -> None:
    args = parse_args()
    import torch
    from mmengine.config import Config

    import mmkd  # noqa: F401  (registries, safe checkpoint loading)
    from shapes_demo.node_graph import NodeGraphStats
    from shapes_demo.tasks import BUDGETS
    from shapes_demo.trained_models import (load_model, report_runs,
                                            seg_runner, trained_models)
    task = next(t for t in TASKS if t.name == 'seg')
    work = osp.abspath(args.work_dir)
    trained = trained_models(work, 'seg', False, BUDGETS['default'])
    pair_cfg = Config.fromfile(osp.join(CONFIGS, task.variants['pair']))
    loss = pair_cfg.model.distill_losses.pair
    taps = (pair_cfg.model.student_taps[loss.student],
            pair_cfg.model.teacher_taps[loss.teacher])
    runner = seg_runner(trained, 'diagnose_pair_wise')
    models = {'teacher': (load_model(runner, task.teacher, trained.teacher),
                          taps[1])}
    for run in report_runs(work, 'seg', args.roles):
        config = (task.student if run['role'] == 'student' else
                  task.variants[run['role']])
        models[f"{run['role']} s{run['seed']}"] = (load_model(
            runner, config, run['student_checkpoint'] or run['checkpoint']),
            taps[0])
    features, stats = {}, {}
    for name, (model, tap) in models.items():
        model.eval()
        model.get_submodule(tap).register_forward_hook(
            lambda module, inputs, output, name=name: features.__setitem__(
                name, output.detach().clone()))
        stats[name] = NodeGraphStats(
            loss.get('node_size', 2), runner.cfg.model.decode_head.num_classes)
    loader = runner.build_dataloader(runner.cfg.get(
        f'{args.split}_dataloader'))
    with torch.no_grad():
        for i, batch in enumerate(loader):
            if args.batches is not None and i == args.batches:
                break
            data = models['teacher'][0].data_preprocessor(batch, False)
            labels = torch.stack([s.gt_sem_seg.data[0]
                                  for s in data['data_samples']])
            for name, (model, _) in models.items():
                model.decode_head(model.extract_feat(data['inputs']))
                stats[name].update(features[name], labels)
    classes = loader.dataset.metainfo['classes']
    names = list(models)
    print(f'Taps: student {taps[0]}, teacher {taps[1]}; {args.split} split.'
          '\n\nMean cosine of two nodes of one image, by their classes:\n')
    print('| classes | node pairs | ' + ' | '.join(names) + ' |')
    print('|---|---|' + '---|' * len(names))
    cosines = {n: stats[n].mean_cosine() for n in names}
    norms = {n: stats[n].mean_relative_norm() for n in names}
    for key, (_, count) in sorted(cosines['teacher'].items(),
                                  key=lambda kv: -kv[1][1]):
        cells = [cosines[n].get(key, (float('nan'), 0))[0] for n in names]
        print(f'| {classes[key[0]]}-{classes[key[1]]} | {count} | ' +
              ' | '.join(f'{c:.3f}' for c in cells) + ' |')
    print('\nMean node norm / mean node norm of its image, by class:\n')
    print('| class | nodes | ' + ' | '.join(names) + ' |')
    print('|---|---|' + '---|' * len(names))
    for cls, (_, count) in sorted(norms['teacher'].items()):
        cells = [norms[n].get(cls, (float('nan'), 0))[0] for n in names]
        print(f'| {classes[cls]} | {count} | ' +
              ' | '.join(f'{c:.3f}' for c in cells) + ' |')


if __name__ == '__main__':
    main()
