"""report: one self-contained HTML page about a deploy run.

The page holds the steps and their times, the ONNX graph's node counts by op
type before and after the passes, the output comparison of the gate, both
pictures and a quick profile of the deployed backend against eager PyTorch.
Pictures are embedded as base64 PNGs, so the file can be mailed or archived
alone.
"""
from __future__ import annotations

import base64
import datetime
import html
import json
import os
from typing import Any, Dict, List, Optional, Sequence

REPORT_FILE = 'report.html'

_STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1200px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #bbb; padding: 3px 8px; text-align: left; }
th { background: #eef; } td.num { text-align: right; font-family: monospace; }
.ok { color: #060; font-weight: bold; } .failed { color: #b00; font-weight: bold; }
.pictures { display: flex; gap: 16px; flex-wrap: wrap; } .pictures figure { margin: 0; }
.pictures img { max-width: 560px; border: 1px solid #ccc; } .note { color: #555; font-size: 13px; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = (),
           table_id: str = '') -> str:
    head = ''.join(f'<th>{_e(h)}</th>' for h in header)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            css = ' class="num"' if i in numeric else ''
            cells.append(f'<td{css}>{cell}</td>')
        body.append(f'<tr>{"".join(cells)}</tr>')
    ident = f' id="{_e(table_id)}"' if table_id else ''
    return f'<table{ident}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _png_tag(data: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _fmt(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.3g}'


def steps_section(timings: Dict[str, float]) -> str:
    """The steps and their seconds, with the total."""
    rows = [[_e(step), f'{seconds:.2f}'] for step, seconds in timings.items()]
    rows.append(['<b>total</b>', f'<b>{sum(timings.values()):.2f}</b>'])
    return _table(['step', 'seconds'], rows, numeric=[1], table_id='steps')


def op_counts_section(op_counts: Dict[str, Dict[str, int]]) -> str:
    """Node counts by op type, exported vs after the passes (most frequent first)."""
    if not op_counts:
        return '<p class="note">No ONNX graph (this backend takes the PyTorch model).</p>'
    before, after = op_counts.get('exported', {}), op_counts.get('after passes', {})
    ops = sorted(set(before) | set(after), key=lambda op: (-max(before.get(op, 0), after.get(op, 0)), op))
    rows = []
    for op in ops:
        change = after.get(op, 0) - before.get(op, 0)
        rows.append([_e(op), before.get(op, 0), after.get(op, 0), f'{change:+d}' if change else ''])
    total_before, total_after = sum(before.values()), sum(after.values())
    rows.append(['<b>all nodes</b>', f'<b>{total_before}</b>', f'<b>{total_after}</b>',
                 f'<b>{total_after - total_before:+d}</b>'])
    return _table(['op type', 'exported', 'after passes', 'change'], rows, numeric=[1, 2, 3], table_id='ops')


def comparison_section(result: Any) -> str:
    """Each run of the gate: every compared output with its verdict, differences and detail."""
    if not result.verifications:
        return '<p class="note">Not verified (--no-verify): the outputs were not compared with PyTorch.</p>'
    parts = []
    for verification in result.verifications:
        rows = []
        for check in verification.checks:
            verdict = '<span class="ok">ok</span>' if check.passed else '<span class="failed">FAILED</span>'
            rows.append([_e(check.name), verdict, _fmt(check.max_abs), _fmt(check.max_rel), _fmt(check.mean_abs),
                         _e(check.detail)])
        parts.append(f'<h3>{_e(verification.label)}</h3>')
        parts.append(_table(['output', 'verdict', 'max abs diff', 'max rel diff', 'mean abs diff', 'detail'],
                            rows, numeric=[2, 3, 4]))
        parts += [f'<p class="note">{_e(note)}</p>' for note in verification.notes]
    return '\n'.join(parts)


def pictures_section(work_dir: str, backend: str) -> str:
    """``output_pytorch.png`` and ``output_<backend>.png`` side by side, embedded."""
    figures = []
    for name, title in (('output_pytorch.png', 'PyTorch'), (f'output_{backend}.png', backend)):
        path = os.path.join(work_dir, name)
        if os.path.isfile(path):
            with open(path, 'rb') as f:
                figures.append(f'<figure>{_png_tag(f.read(), title)}<figcaption>{_e(title)} ({_e(name)})'
                               f'</figcaption></figure>')
    if not figures:
        return '<p class="note">No pictures (not verified, or drawing was off).</p>'
    return f'<div class="pictures">{"".join(figures)}</div>'


def profile_section(profile: Any) -> str:
    """The profile table, its conditions and the bar chart."""
    from mmdeploy.apis.profile import PYTORCH, bar_chart_png

    if profile is None:
        return '<p class="note">Not profiled.</p>'
    base = {(r.batch_size, r.shape): r.median_ms for r in profile.rows
            if r.backend == PYTORCH and r.median_ms is not None}
    rows = []
    for row in profile.rows:
        ref = base.get((row.batch_size, row.shape))
        size = 'x'.join(str(s) for s in row.input_shape[2:][::-1]) if row.input_shape else row.shape
        rows.append([_e(row.backend), row.batch_size, _e(size), _fmt(row.median_ms), _fmt(row.p90_ms),
                     f'{ref / row.median_ms:.2f}x' if ref and row.median_ms else '-', _e(row.status)])
    table = _table(['backend', 'batch', 'input (WxH)', 'median ms', 'p90 ms', 'vs PyTorch', 'status'], rows,
                   numeric=[1, 3, 4, 5], table_id='profile')
    return (f'<p class="note">{_e(profile.header())}</p>{table}'
            f'<p>{_png_tag(bar_chart_png(profile), "latency bar chart")}</p>')


def backend_files_of(work_dir: str) -> List[str]:
    """The backend files a deploy wrote, as deploy.json's ``models`` name them (net, then weights)."""
    with open(os.path.join(work_dir, 'deploy.json')) as f:
        meta = json.load(f)
    files = []
    for entry in meta.get('models', []):
        for key in ('net', 'weights'):
            if entry.get(key):
                files.append(os.path.join(work_dir, entry[key]))
    return files


def render_report(result: Any, work_dir: str, title: str, profile: Any = None,
                  details: Optional[Dict[str, Any]] = None) -> str:
    """The HTML text of the report of a :class:`~mmdeploy.apis.deploy.DeployResult`."""
    if result.verified:
        verdict = '<span class="ok">verified against PyTorch</span>'
    elif result.verifications:
        verdict = '<span class="failed">verification FAILED</span>'
    else:
        verdict = '<span class="failed">NOT verified</span> (--no-verify)'
    detail_rows = [[_e(k), _e(v)] for k, v in (details or {}).items()]
    files = ', '.join(sorted(result.files)) or '-'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{_e(title)}</h1>
<p id="verdict">{_e(result.backend)}: {verdict}</p>
{_table(['run', ''], detail_rows + [['files', _e(files)]], table_id='details')}
<h2>Steps</h2>
{steps_section(result.timings)}
<h2>ONNX graph: nodes by op type</h2>
{op_counts_section(result.onnx_op_counts)}
<h2>Output comparison (PyTorch vs {_e(result.backend)})</h2>
{comparison_section(result)}
<h2>Pictures</h2>
{pictures_section(work_dir, result.backend)}
<h2>Profile</h2>
{profile_section(profile)}
<p class="note">Written by mmdeploy on {datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}.</p>
</body></html>
"""


def write_report(result: Any, work_dir: str, deploy_cfg: Any, model_cfg: Any, path: Optional[str] = None,
                 model_checkpoint: Optional[str] = None, device: Optional[str] = None, img: Any = None,
                 profile: bool = True, repeats: int = 10, warmup: int = 2, show_progress: bool = True) -> str:
    """Write the HTML report of a deploy run (``work_dir/report.html`` by default); returns its path.

    Args:
        result: the :class:`~mmdeploy.apis.deploy.DeployResult` (also the one
            a ``VerificationError`` carries).
        work_dir: the deploy's work dir (pictures, deploy.json, backend files).
        deploy_cfg / model_cfg: the configs the deploy used.
        path: the HTML file to write (atomically).
        model_checkpoint / device / img: as given to the deploy; ``img`` feeds
            the profile.
        profile: time the deployed backend against eager PyTorch
            (``repeats`` timed calls after ``warmup``); a failure to profile is
            reported in the page.
    """
    from mmdeploy.apis.profile import ProfileResult, ProfileRow, profile_model
    from mmdeploy.utils.files import atomic_write_bytes

    from mmdeploy.utils.config import load_config

    path = path or os.path.join(work_dir, REPORT_FILE)
    deploy_cfg = load_config(deploy_cfg, what='deploy config')
    if device is None:  # as deploy: the config's backend_config.device, else the CPU
        device = str((deploy_cfg.get('backend_config', None) or {}).get('device', None) or 'cpu')
    timing = None
    if profile:
        try:
            timing = profile_model(deploy_cfg, model_cfg, model_checkpoint, backends=[result.backend],
                                   repeats=repeats, warmup=warmup, device=device, img=img,
                                   backend_files={result.backend: backend_files_of(work_dir)},
                                   show_progress=show_progress)
        except Exception as exc:  # noqa: BLE001 the report is still worth writing
            timing = ProfileResult(rows=[ProfileRow(result.backend, 1, 'default', status=f'profile failed: '
                                                    f'{type(exc).__name__}: {" ".join(str(exc).split())[:200]}')])
    details = {'deploy config': _name(deploy_cfg), 'model config': _name(model_cfg),
               'checkpoint': model_checkpoint or 'none (random weights)', 'device': device}
    text = render_report(result, work_dir, f'mmdeploy report: {os.path.basename(_name(model_cfg))} on '
                         f'{result.backend}', timing, details)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_bytes(path, text.encode('utf-8'))
    return path


def _name(cfg: Any) -> str:
    return str(getattr(cfg, 'filename', None) or cfg)
