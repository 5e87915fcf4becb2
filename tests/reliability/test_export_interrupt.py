"""A long dynamo export can be stopped with Ctrl-C; a failed one suggests the TorchScript exporter.

The interrupt test runs a dynamo export that takes minutes (a model of tens
of thousands of small ops with a dynamic batch: torch.export traces each op
and solves its symbolic shapes in Python, like the classifiers with adaptive
padding that sat for minutes in shape solving) in a subprocess, sends SIGINT
once the export has started and checks that the process ends within
``STOP_WITHIN`` seconds with KeyboardInterrupt (the CLI maps it to exit 130)
and leaves no file behind.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from mmdeploy.apis.onnx.export import export_onnx
from mmdeploy.errors import ExportError

STOP_WITHIN = 10.0  # seconds from SIGINT to exit; the export itself would run for minutes

SCRIPT = textwrap.dedent('''
    import signal
    import sys
    import torch

    from mmdeploy.apis.onnx.export import export_onnx

    # a shell that starts a job in the background (nohup ... &) ignores SIGINT in it, and children inherit
    # that: Python's KeyboardInterrupt handler is put back, as in an interactive run
    signal.signal(signal.SIGINT, signal.default_int_handler)

    class Long(torch.nn.Module):
        def forward(self, x):
            for i in range(40000):
                x = x * 1.0001 + float(i % 7)
            return x

    print('exporting', flush=True)
    try:
        export_onnx(Long().eval(), (torch.ones(2, 3),), sys.argv[1], exporter='dynamo',
                    input_names=['input'], output_names=['output'], dynamic_axes={'input': {0: 'batch'}})
    except KeyboardInterrupt:
        print('interrupted', flush=True)
        sys.exit(130)
    print('finished', flush=True)
''')


def _interrupt_child(script: str, args: list, first_line: str, delay: float) -> tuple:
    """Start ``script`` in a child, wait for ``first_line`` and ``delay`` seconds, send one SIGINT.

    Returns ``(returncode, rest of its output, seconds from SIGINT to exit)``; fails after 60 s.
    """
    proc = subprocess.Popen([sys.executable, '-c', script, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=os.getcwd())
    try:
        assert proc.stdout.readline().strip() == first_line
        time.sleep(delay)
        assert proc.poll() is None, 'the child ended before the interrupt: the test proves nothing'
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f'still running 60 s after SIGINT; its output:\n{proc.communicate()[0][-3000:]}')
        return proc.returncode, rest, time.perf_counter() - sent
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
@pytest.mark.skipif(os.name != 'posix', reason='SIGINT delivery to a child process')
def test_sigint_stops_dynamo_export_promptly(tmp_path):
    output = tmp_path / 'long.onnx'
    returncode, rest, stopped = _interrupt_child(SCRIPT, [str(output)], 'exporting', 3.0)  # inside tracing
    assert returncode == 130 and 'interrupted' in rest, rest[-2000:]
    assert stopped < STOP_WITHIN, f'{stopped:.1f} s from SIGINT to exit'
    assert list(tmp_path.iterdir()) == []  # neither the ONNX file nor its .partial


class DataDependent(torch.nn.Module):
    """Branches on a tensor value: torch.export refuses it, the TorchScript tracer records one branch."""

    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x - 1


def test_failed_dynamo_export_suggests_torchscript(tmp_path):
    with pytest.raises(ExportError) as info:
        export_onnx(DataDependent().eval(), (torch.ones(1, 3),), str(tmp_path / 'a.onnx'), exporter='dynamo')
    message = str(info.value)
    assert message.startswith('dynamo export to ONNX failed')
    assert "--exporter torchscript" in message and "onnx_config.exporter='torchscript'" in message
    # the suggestion holds for this model: the TorchScript exporter writes it
    assert export_onnx(DataDependent(), (torch.ones(1, 3),), str(tmp_path / 'b.onnx'), exporter='torchscript')
    assert (tmp_path / 'b.onnx').exists() and not (tmp_path / 'a.onnx').exists()


STICKY_SCRIPT = textwrap.dedent('''
    import json
    import signal
    import time

    from mmdeploy.apis.onnx.interrupt import sticky_interrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in the export test's child
    swallowed = 0
    with sticky_interrupt() as state:
        print('ready', flush=True)
        for _ in range(3):  # three 'strategies' of 30 s each, each swallowing the interrupt
            try:
                end = time.monotonic() + 30
                while time.monotonic() < end:
                    pass
            except KeyboardInterrupt:
                swallowed += 1
    default_back = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    time.sleep(1.5)  # no interrupt of ours arrives after the block: it would end this process here
    print(json.dumps(dict(interrupted=state['interrupted'], swallowed=swallowed, default_back=default_back)))
''')


@pytest.mark.skipif(os.name != 'posix', reason='SIGINT delivery to a child process')
def test_sticky_interrupt_stops_code_that_swallows_it():
    """torch's exporter can turn a KeyboardInterrupt into a failed strategy and start the next one (minutes).

    Three 'strategies' of 30 s each swallow the interrupt; after one SIGINT the block still ends within
    seconds, reports that it was interrupted and leaves Python's default SIGINT handler behind. It runs in a
    child process: the signals stay out of the test process and its native thread pools.
    """
    returncode, rest, stopped = _interrupt_child(STICKY_SCRIPT, [], 'ready', 0.3)
    assert returncode == 0, rest[-2000:]
    assert json.loads(rest.strip().splitlines()[-1]) == dict(interrupted=True, swallowed=3, default_back=True)
    assert stopped < STOP_WITHIN + 1.5, f'{stopped:.1f} s from SIGINT to exit'  # + the child's 1.5 s sleep
