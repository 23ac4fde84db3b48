"""The demo's stage scheduler: jobs run after the jobs they wait for, a
job's ``prepare`` sees the results before it, a failed job stops the run,
and two worker processes really run two jobs at once."""
import os
import os.path as osp
import sys
import time

import pytest
from mmengine.config import Config

from mmkd.testing import REPO_ROOT as REPO

sys.path.insert(0, osp.join(REPO, 'projects', 'shapes_demo'))
from shapes_demo.scheduler import Job, run_jobs  # noqa: E402


def record(name: str, log: str, value: int = 0, sleep: float = 0.0):
    """A job: append ``name`` and the job's environment variable to
    ``log``, return ``value``."""
    with open(log, 'a') as f:
        f.write(f'start {name} {os.environ.get("SCHED_TEST", "-")}\n')
    time.sleep(sleep)
    with open(log, 'a') as f:
        f.write(f'end {name}\n')
    return value, f'{name} done'


def rendezvous(name: str, log: str, other: str):
    """A job that returns only once job ``other`` has started too: it can
    finish only when the two run at the same time."""
    with open(log, 'a') as f:
        f.write(f'start {name}\n')
    deadline = time.time() + 120
    while f'start {other}' not in lines(log):
        if time.time() > deadline:
            raise TimeoutError(f'{other} never started beside {name}')
        time.sleep(0.05)
    with open(log, 'a') as f:
        f.write(f'end {name}\n')
    return None, name


def fail(name: str):
    raise RuntimeError(f'{name} broke')


def no_init():
    pass


def lines(log):
    with open(log) as f:
        return f.read().split('\n')[:-1]


def test_inline_order_prepare_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv('SCHED_TEST', 'before')  # restored afterwards
    log = str(tmp_path / 'log')
    seen = []
    jobs = [
        # listed first, but waits for b and c
        Job('a', record, dict(name='a', log=log), after=('b', 'c'),
            prepare=lambda results: dict(value=results['b'] + results['c'])),
        Job('b', record, dict(name='b', log=log, value=2),
            env=dict(SCHED_TEST='x')),
        Job('c', record, dict(name='c', log=log, value=3), priority=0),
    ]
    results = run_jobs(jobs, 1, seen.append)
    assert results == dict(a=5, b=2, c=3)
    assert list(results) == ['a', 'b', 'c']  # the order given
    # c first (priority 0), then b, then a once both are done
    assert seen == ['c done', 'b done', 'a done']
    assert lines(log)[2] == 'start b x'


def test_one_worker_runs_the_initializer_when_given_its_arguments(tmp_path):
    """``--threads`` with ``--jobs 1``: the jobs run in this process, and
    the initializer's arguments (the torch threads) apply here too."""
    import torch
    before = torch.get_num_threads()
    calls = []
    log = str(tmp_path / 'log')
    job = Job('x', record, dict(name='x', log=log, value=1))
    run_jobs([job], 1, lambda line: None, initializer=calls.append)
    assert calls == []  # no arguments given: nothing to apply
    try:
        run_jobs([job], 1, lambda line: None, initargs=(1, ))
        assert torch.get_num_threads() == 1
        run_jobs([job], 1, lambda line: None, initializer=calls.append,
                 initargs=(3, ))
        assert calls == [3]
    finally:
        torch.set_num_threads(before)


def test_two_workers_overlap_and_respect_after(tmp_path):
    log = str(tmp_path / 'log')
    jobs = [Job('one', rendezvous, dict(name='one', log=log, other='two')),
            Job('two', rendezvous, dict(name='two', log=log, other='one')),
            Job('last', record, dict(name='last', log=log),
                after=('one', 'two'))]
    run_jobs(jobs, 2, lambda line: None, initializer=no_init)
    order = lines(log)
    # each of the first two waited for the other: they ran side by side
    assert sorted(order[:2]) == ['start one', 'start two']
    assert order[-2:] == ['start last -', 'end last']


def test_failed_job_stops_the_run(tmp_path, capsys):
    log = str(tmp_path / 'log')
    jobs = [Job('bad', fail, dict(name='bad')),
            Job('after_bad', record, dict(name='after_bad', log=log),
                after=('bad', ))]
    with pytest.raises(SystemExit, match='stage bad failed.*bad broke'):
        run_jobs(jobs, 1, lambda line: None)
    assert not osp.exists(log)  # the job waiting for it never ran
    assert 'RuntimeError: bad broke' in capsys.readouterr().err


@pytest.mark.parametrize('jobs, match', [
    ([Job('a', record), Job('a', record)], 'unique'),
    ([Job('a', record, after=('z', ))], "waits for unknown jobs \\['z'\\]"),
])
def test_bad_job_lists(jobs, match):
    with pytest.raises(ValueError, match=match):
        run_jobs(jobs, 1, lambda line: None)


def test_jobs_waiting_for_each_other():
    jobs = [Job('a', record, after=('b', )), Job('b', record, after=('a', ))]
    with pytest.raises(ValueError, match='wait for each other'):
        run_jobs(jobs, 1, lambda line: None)


def test_demo_job_graphs(tmp_path):
    """The report's and the selection's jobs wait for what they need: a
    baseline student for the pretraining only, a distilled student for the
    teacher too, and a selection's variant candidates for every baseline
    candidate, whose best rate ``prepare`` passes on."""
    from shapes_demo.plans import report_jobs, selection_jobs
    from shapes_demo.protocol import variant_candidates
    from shapes_demo.stage_run import StageResult
    from shapes_demo.tasks import BUDGETS, CONFIGS, TASKS
    seg = next(t for t in TASKS if t.name == 'seg')
    budget, work = BUDGETS['quick'], str(tmp_path)
    jobs, shown = report_jobs(seg, budget, [0, 1], work, '/data/seg')
    by_key = {j.key: j for j in jobs}
    assert shown == [k for k in by_key if k != 'seg_pretrain']
    assert by_key['seg_teacher'].after == by_key['seg_pretrain'].after == ()
    assert by_key['seg_student_seed1'].after == ('seg_pretrain', )
    assert by_key['seg_pair_seed0'].after == ('seg_pretrain', 'seg_teacher')
    assert by_key['seg_pair_seed0'].kwargs['teacher_checkpoint'] == osp.join(
        work, 'seg_teacher', 'teacher.pth')
    assert by_key['seg_pair_seed0'].env['SHAPES_SEG_PRETRAINED'] == osp.join(
        work, 'seg_pretrain', f"iter_{budget.iters['pretraining']}.pth")
    assert by_key['seg_pair_seed0'].env['SHAPES_SEG'] == '/data/seg'

    jobs, _ = selection_jobs(seg, budget, [1000, 1001], work, '/data/seg')
    by_key = {j.key: j for j in jobs}
    rates = Config.fromfile(osp.join(CONFIGS, seg.student)).lr_grid
    baseline = [f'seg_student_c{i}_seed{s}' for i in range(len(rates))
                for s in (1000, 1001)]
    assert [by_key[k].kwargs['lr'] for k in baseline[::2]] == rates
    cwd = by_key['seg_cwd_c3_seed1001']
    assert set(cwd.after) == set(baseline) | {'seg_pretrain',
                                              'seg_teacher'}
    # candidate 2 has the best mean over the two seeds
    results = {k: StageResult('seg', 'student', 0, 50.0 if k in (
        'seg_student_c2_seed1000', 'seg_student_c2_seed1001') else 10.0,
        'val', [], {}, 0.0, '', '', candidate=int(k.split('_c')[1][0]))
        for k in baseline}
    cfg = Config.fromfile(osp.join(CONFIGS, seg.variants['cwd']))
    overrides, lr = variant_candidates(cfg, seg.variants['cwd'],
                                       rates[2])[3]
    assert cwd.prepare(results) == dict(overrides=overrides, lr=lr)
    assert lr in (rates[2], rates[2] * 0.5)


SIGTERM_SCRIPT = '''
import os, sys, time
sys.path.insert(0, {demo!r})
from shapes_demo.scheduler import Job, run_jobs


def pid_then_sleep(name, folder):
    with open(os.path.join(folder, name), 'w') as f:
        f.write(str(os.getpid()))
    time.sleep(300)
    return None, name


def no_init():
    pass


if __name__ == '__main__':
    run_jobs([Job(n, pid_then_sleep, dict(name=n, folder=sys.argv[1]))
              for n in ('a', 'b')], 2, print, initializer=no_init)
'''


def test_sigterm_stops_the_workers_too(tmp_path):
    """``kill`` of a demo command (SIGTERM) ends its workers with it: by
    default the command would die at once and leave them training into its
    work dir, unwatched."""
    import signal
    import subprocess
    script = tmp_path / 'two_sleepers.py'
    script.write_text(SIGTERM_SCRIPT.format(
        demo=osp.join(REPO, 'projects', 'shapes_demo')))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 120
    pids = []
    while len(pids) < 2:
        assert time.time() < deadline and proc.poll() is None, \
            proc.communicate()
        time.sleep(0.1)
        pids = [int((tmp_path / n).read_text()) for n in ('a', 'b')
                if (tmp_path / n).exists() and (tmp_path / n).read_text()]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert 'shapes demo: stopped by signal 15' in err

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    deadline = time.time() + 30
    while any(alive(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids)
