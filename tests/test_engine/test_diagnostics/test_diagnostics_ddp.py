"""DistillDiagnosticsHook under DDP: two gloo ranks on CPU, each with its
own batch, the toy distiller wrapped in mmengine's
MMDistributedDataParallel. Both ranks run the probe (no rank waits on
another), rank 0 alone publishes its figures (those of its own batch, as
computed by hand), and the step is the one DDP takes without the hook.

The ranks run under a deadline: a rank that has not ended by then is
killed and the test fails, naming the last stage each rank reached (its
``rank<r>.stages`` file), instead of waiting for ever."""
import json
import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp

WORLD_SIZE = 2
#: Seconds the two ranks may take together (about 10 s on 2 idle cores).
DEADLINE_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def rank_main(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel
    from mmengine.optim import OptimWrapper

    from mmkd.engine.hooks import DistillDiagnosticsHook
    from mmkd.testing import measured_step, toy_distiller

    def reached(stage: str) -> None:
        with open(f'{out}/rank{rank}.stages', 'a') as f:
            f.write(stage + '\n')

    reached('started')
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=WORLD_SIZE)
    reached('joined the group')
    # rank r's batch: inputs 2 + r everywhere
    data = dict(inputs=torch.full((1, 2, 2, 2), 2.0 + rank),
                data_samples=None)
    params = {}
    for hooked in (True, False):
        model = MMDistributedDataParallel(
            module=toy_distiller(dict(pull=0.4), teacher_scale=0.5))
        reached(f'wrapped the model (hooked {hooked})')
        wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
        if hooked:
            hook = DistillDiagnosticsHook(interval=1)
            figures = measured_step(model, hook, data=dict(data),
                                    optim_wrapper=wrapper)
            measured = len(hook.history.terms['pull'])
        else:
            model.train_step(dict(data), wrapper)
        params[hooked] = model.module.student.feat.weight.detach().clone()
        reached(f'stepped (hooked {hooked})')
    with open(f'{out}/rank{rank}.json', 'w') as f:
        json.dump(dict(figures=figures, measured=measured,
                       same_step=torch.equal(params[True], params[False]),
                       weight=params[True].flatten().tolist()), f)
    reached('wrote its figures')
    dist.destroy_process_group()
    reached('left the group')
    # Both ranks reached here and then hung at interpreter exit in a loaded
    # CI run (every stage done, the processes alive 300 s later): nothing
    # is left to do, so end without the interpreter's teardown.
    os._exit(0)


def run_ranks(out: str) -> None:
    """Spawn the ranks and wait for them to end, at most
    :data:`DEADLINE_S`; a rank that raised fails the test with its
    traceback (``ProcessRaisedException``)."""
    context = mp.start_processes(rank_main, args=(free_port(), out),
                                 nprocs=WORLD_SIZE, join=False,
                                 start_method='spawn')
    deadline = time.monotonic() + DEADLINE_S
    while not context.join(timeout=1):
        if time.monotonic() < deadline:
            continue
        stages = {}
        for rank, process in enumerate(context.processes):
            process.kill()
            try:
                with open(f'{out}/rank{rank}.stages') as f:
                    stages[rank] = f.read().split('\n')[-2]
            except (FileNotFoundError, IndexError):
                stages[rank] = 'not started'
        pytest.fail(f'the ranks did not end within {DEADLINE_S} s; the '
                    f'last stage each reached: {stages}')


def test_two_ranks_measure_rank_0_publishes(tmp_path):
    run_ranks(str(tmp_path))
    ranks = [json.loads((tmp_path / f'rank{r}.json').read_text())
             for r in range(WORLD_SIZE)]
    # both ranks ran the probe; rank 0 alone sent figures: its own batch's
    # (inputs 2: ratio 4·0.4·0.5 / 8 = 0.1)
    assert [r['measured'] for r in ranks] == [1, 1]
    assert ranks[1]['figures'] == {}
    figures = ranks[0]['figures']
    assert abs(figures['distill_diag/pull/grad_ratio'] - 0.1) < 1e-6
    assert abs(figures['distill_diag/pull/grad_cos'] - 1.0) < 1e-6
    # the hooked step is the plain DDP step, and the ranks agree
    assert all(r['same_step'] for r in ranks)
    assert ranks[0]['weight'] == ranks[1]['weight']
