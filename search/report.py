"""`python -m search.report OUT [--html FILE]`: one self-contained HTML page of a search.

View-only: the store is opened read-only, nothing is resumed, started or built, so it is
safe while the search runs (rerun it to refresh). Works for every space and strategy.
The page (default OUT/report.html; images inline, no external files) holds the frontier
with the reference trials marked, reward / score / cost over trials, the PPO controller's
entropy and baseline or the evolution's population best and mean, the best cells drawn
like the MnasFPN paper's Fig. 2 (MSNAS: its Fig. 1(b)), the best child's backbone / head
/ predictor latency split (Fig. 5) where a latency table already exists, and a sortable
table of every trial with its failure reason and a link to its log.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
import time
from typing import Optional, Sequence

from mnas_tf import console  # noqa: F401  (first: quiets TensorFlow before it loads)

BEST_CELLS = 3
STYLE = """body{font-family:DejaVu Sans,Arial,sans-serif;margin:24px;color:#222;max-width:1180px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.note{color:#666;font-size:13px}figure{margin:10px 0}figcaption{font-size:13px;color:#444}
table{border-collapse:collapse;font-size:12px}th,td{border:1px solid #ddd;padding:3px 6px}
th{background:#f2f4f7;cursor:pointer;user-select:none}td.num{text-align:right}
tr.failed td{background:#fdecea}tr.reference td{background:#fff7e0}
figure svg,figure img{max-width:100%;height:auto}"""
SORT_JS = """document.querySelectorAll('table.sortable th').forEach(function(th,i){
th.addEventListener('click',function(){var t=th.closest('table'),b=t.tBodies[0];
var up=th.dataset.dir!=='asc';th.dataset.dir=up?'asc':'desc';
var rows=Array.from(b.rows).sort(function(x,y){var a=x.cells[i].dataset.v,c=y.cells[i].dataset.v;
var p=parseFloat(a),q=parseFloat(c);var r=(isNaN(p)||isNaN(q))?a.localeCompare(c):p-q;
return up?r:-r;});rows.forEach(function(r){b.appendChild(r);});});});"""
COLUMNS = ("id", "status", "role", "score", "latency (ms)", "MAdds", "reward", "seed",
           "reason", "log")


def build_html(record, html_path: str) -> str:
    """The report page of a loaded search (`search.report_data.SearchRecord`)."""
    from search import report_figures as figures
    counts = {}
    for t in record.trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    cfg = record.config
    ranked = record.ranked()
    best = ranked[0] if ranked else None
    parts = [f"<h1>Search report: {_e(os.path.abspath(record.out))}</h1>",
             f"<p>space <b>{_e(cfg.get('space'))}</b>, strategy <b>{_e(cfg.get('strategy'))}"
             f"</b>, evaluator <b>{_e(cfg.get('evaluator'))}</b>, score: {_e(record.metric())}"
             f" | trials: {_e(', '.join(f'{n} {s}' for s, n in sorted(counts.items())))}"
             f"</p><p class='note'>A snapshot taken {time.strftime('%Y-%m-%d %H:%M:%S')} "
             f"without touching the search (read-only); rerun <code>python -m search.report"
             f"</code> to refresh.</p>"]
    if best is not None:
        parts.append(f"<p>best: trial {best.id}, reward {_n(best.reward)}, "
                     f"{_e(record.metric())} {_n(best.map)}, latency {_n(best.latency_ms)} ms, "
                     f"MAdds {_n(best.madds)}</p>")
    parts.append("<h2>Frontier</h2>")
    parts.append(_figure(figures.frontier_png(record), "every done child, the non-dominated "
                         "ones (red) and the reference trials (stars)",
                         "no child has both a score and a cost (latency or MAdds) yet"))
    parts.append("<h2>Reward, score and cost over trials</h2>")
    parts.append(_figure(figures.over_trials_png(record), "by trial id", "no finished trial"))
    parts.append("<h2>Strategy</h2>")
    uri, note = figures.strategy_png(record)
    parts.append(_figure(uri, note, note))
    parts.append("<h2>Best cells</h2>")
    parts.extend(_cells(ranked[:BEST_CELLS], record, figures) or
                 ["<p class='note'>no scored child yet</p>"])
    parts.append("<h2>Latency split of the best child</h2>")
    svg, note = figures.latency_split(record, best)
    parts.append(f"<figure>{svg}<figcaption>{_e(note)}</figcaption></figure>" if svg
                 else f"<p class='note'>{_e(note)}</p>")
    parts.append("<h2>Trials</h2><p class='note'>click a column to sort</p>")
    parts.append(_table(record, os.path.dirname(os.path.abspath(html_path))))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>search report "
            f"{_e(os.path.basename(os.path.abspath(record.out)))}</title><style>{STYLE}"
            f"</style></head><body>{''.join(parts)}<script>{SORT_JS}</script></body></html>")


def _cells(trials, record, figures) -> list:
    out = []
    for rank, t in enumerate(trials, 1):
        try:
            svg = figures.cell_svg(t.arch)
        except ValueError as e:
            out.append(f"<p class='note'>trial {t.id}: cannot draw ({_e(e)})</p>")
            continue
        out.append(f"<figure class='cell'>{svg}<figcaption>#{rank}: trial {t.id}, reward "
                   f"{_n(t.reward)}, {_e(record.metric())} {_n(t.map)}, latency "
                   f"{_n(t.latency_ms)} ms, MAdds {_n(t.madds)}</figcaption></figure>")
    return out


def _table(record, html_dir: str) -> str:
    """Every trial, one row each; a cell's `data-v` is what its column sorts by."""
    head = "".join(f"<th>{_e(c)}</th>" for c in COLUMNS)
    rows = []
    for t in record.trials:
        role = record.roles[t.id]
        shown_role = f"reference: {t.extra.get('reference', '')}" if role == "reference" \
            else role
        log = record.log_path(t.id)
        link = (f"<a href='{_e(os.path.relpath(log, html_dir))}'>trial_{t.id}.log</a>"
                if log else "")
        reason = _reason(t)
        cells = [_cell(t.id, number=True), _cell(t.status), _cell(shown_role),
                 *(_cell(v, number=True) for v in (t.map, t.latency_ms, t.madds, t.reward)),
                 _cell(t.seed, number=True), _cell(reason),
                 f"<td data-v='{_e(log and os.path.basename(log))}'>{link}</td>"]
        kind = "failed" if t.status == "failed" else role
        rows.append(f"<tr class='{kind}'>{''.join(cells)}</tr>")
    return (f"<table class='sortable' id='trials'><thead><tr>{head}</tr></thead><tbody>"
            f"{''.join(rows)}</tbody></table>")


def _cell(value, number: bool = False) -> str:
    if not number:
        return f"<td data-v='{_e(value)}'>{_e(value)}</td>"
    shown = _n(value) if isinstance(value, float) else _e(value)
    return f"<td data-v='{_e(value)}' class='num'>{shown}</td>"


def _reason(t) -> str:
    if t.error:
        return t.error
    for key, text in (("rejected", None), ("reused_from", "same architecture as trial {}")):
        if key in t.extra:
            return text.format(t.extra[key]) if text else str(t.extra[key])
    if t.extra.get("retries"):
        return f"worker lost {len(t.extra['retries'])} time(s), retried"
    return ""


def _n(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _figure(uri: Optional[str], caption: str, missing: str) -> str:
    if not uri:
        return f"<p class='note'>{_e(missing)}</p>"
    return f"<figure><img src='{uri}' alt='{_e(caption)}'><figcaption>{_e(caption)}" \
           f"</figcaption></figure>"


def write_report(out: str, html_path: Optional[str] = None) -> str:
    """Writes the report of the search in `out` and returns its path (ReportError, or
    NotWritableError, one line)."""
    from mnas_tf.writable import check_writable_file
    from search.report_data import load_search
    html_path = html_path or os.path.join(out, "report.html")
    record = load_search(out)
    check_writable_file(html_path, "--html")
    page = build_html(record, html_path)
    temp = f"{html_path}.tmp-{os.getpid()}"
    with open(temp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(temp, html_path)
    return html_path


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="a search's output folder (its --out)")
    parser.add_argument("--html", help="where to write the page (default OUT/report.html)")
    console.add_flag(parser)
    args = parser.parse_args(console.cli(argv))
    from mnas_tf.config_files import ConfigError
    from search.report_data import ReportError
    try:
        path = write_report(args.out, args.html)
    except (ReportError, ConfigError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
