"""``report.html``: one self-contained page per run folder.

Everything the page shows is inside the file: the CSS is inline, every figure a
``data:image/png;base64,...`` image, and it loads no script, font or stylesheet, so the report
can be mailed, archived or opened offline and still look the same. All text from the run folder
is escaped. Epochs are 0-based in the files and shown 1-based, as the figures show them.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from ..files import write_text_atomic
from ..optim import registry, schedules
from .plots import file_stem, is_fraction, metric_label, metric_names, read_metrics, read_results
from .style import CSS

__all__ = ["read_config", "write_report"]

MISSING = "\N{EN DASH}"  # in a cell or a field the run did not record
CAPTIONS = {
    "loss": "Training loss after every update (faint) and per epoch, with the dev loss.",
    "lr": "Learning rate at every update, as the schedule applied it.",
    "grad_norm": "Gradient norm at every update (log scale), and the size of each update "
    "relative to the weights.",
    "confusion": "Confusion matrix{on}: counts in the cells, colors normalized per true class.",
    "misclassified": "Misclassified examples, titled true → predicted.",
}


def read_config(run_dir) -> dict:
    """``run_dir/config.toml`` as a flat dict (nested tables as dotted keys); ``{}`` if absent."""
    path = Path(run_dir) / "config.toml"
    if not path.exists():
        return {}
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    with open(path, "rb") as f:
        return _flatten(tomllib.load(f))


def _flatten(table: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def write_report(run_dir) -> Path:
    """Write ``run_dir/report.html`` from the run's files and the PNGs in ``run_dir/plots/``.

    Draw the figures first with :func:`nabla.report.make_plots` (``nabla.report.build`` does
    both); without them the page has the summary and the tables only.
    """
    run_dir = Path(run_dir)
    config, results = read_config(run_dir), read_results(run_dir)
    _, epochs = read_metrics(run_dir)
    names = metric_names(epochs)
    title = run_dir.resolve().name
    sections = [
        _header(title, config, results),
        _summary(config, results, epochs),
        _snapshot_table(results.get("snapshot_ensemble")),
        _figures(run_dir / "plots", names, results),
        _config_table(config),
        _epoch_table(epochs, names, (results.get("best") or {}).get("epoch")),
    ]
    version = results.get("nabla_version")
    footer = f"Report of {_e(title)}" + (f" · written by nabla {_e(version)}" if version else "")
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(s for s in sections if s)
        + f"\n<footer>{footer}</footer>\n</main>\n</body>\n</html>\n"
    )
    path = run_dir / "report.html"
    write_text_atomic(path, page)
    return path


# --- formatting -------------------------------------------------------------------------------


def _e(value) -> str:
    return html.escape(str(value))


def _number(value) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _metric(name: str, value, column: bool = False) -> str:
    """Fractions as percentages; in a ``column``, trailing zeros kept so digits line up."""
    if value is None:
        return MISSING
    if is_fraction(name):
        return f"{100 * value:.2f}%"
    return f"{value:#.4g}" if column else f"{value:.4g}"


def _duration(seconds) -> str:
    if seconds is None:
        return MISSING
    if seconds < 0.1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _config_value(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return json.dumps(value)
    return _number(value) if isinstance(value, bool) else str(value)


def _short(name: str) -> str:
    """``"top5_accuracy"`` -> ``"top-5 accuracy"``, ``"mse"`` -> ``"MSE"``."""
    label = metric_label(name)
    return label if label.isupper() else label.lower()


def _ordered(metrics: dict) -> list[str]:
    """The headline metrics first (accuracy, ...), the loss last."""
    return [k for k in metrics if k != "loss"] + (["loss"] if "loss" in metrics else [])


# --- sections ---------------------------------------------------------------------------------


def _header(title: str, config: dict, results: dict) -> str:
    parts = [
        results.get("task"),
        config.get("dataset"),
        config.get("model"),
        config.get("optimizer"),
    ]
    subtitle = " · ".join(_e(p) for p in parts if p)
    return (
        f"<header>\n<h1>{_e(title)}</h1>\n"
        + (f'<p class="subtitle">{subtitle}</p>\n' if subtitle else "")
        + "</header>"
    )


def _summary(config: dict, results: dict, epochs: list[dict]) -> str:
    evaluations = dict(results.get("evaluations") or {})
    if "dev" not in evaluations and epochs and epochs[-1].get("dev"):
        evaluations["dev (last epoch)"] = epochs[-1]["dev"]
    stats = []
    for split in ("test", "dev", "dev (last epoch)"):
        metrics = evaluations.get(split) or {}
        for name in _ordered(metrics):
            kind = "test" if split == "test" else "dev"
            stats.append(
                f'<div class="card stat {kind}"><div class="label">{_e(split)} {_e(_short(name))}'
                f'</div><div class="value">{_e(_metric(name, metrics[name]))}</div></div>'
            )

    best = results.get("best") or {}
    if best.get("epoch") is not None:
        monitor = best.get("monitor", "")
        value = (
            f" ({_e(monitor.replace('_', ' '))} {_e(_number(best.get('value')))})"
            if monitor
            else ""
        )
        best_text = f"{best['epoch'] + 1}{value}"
    else:
        best_text = MISSING
    epochs_run = results.get("epochs_run", len(epochs) or None)
    planned = config.get("epochs")
    run_text = _e(_number(epochs_run))
    if planned is not None and epochs_run is not None and planned != epochs_run:
        run_text += f" of {_e(planned)}"
    if results.get("stopped_early"):
        run_text += ' <span class="badge">stopped early</span>'
    facts = [
        ("dataset", _e(config.get("dataset", MISSING))),
        ("model", _e(config.get("model", MISSING))),
        ("optimizer", _e(config.get("optimizer", MISSING))),
        ("learning rate", _e(_number(config.get("lr")))),
        ("schedule", _e(config.get("schedule", MISSING))),
        ("epochs run", run_text),
        ("wall time", _e(_duration(results.get("wall_time")))),
        ("best epoch", best_text),
    ]
    if results.get("ranks"):  # data-parallel on MPI: batch_size was the global batch
        batch = config.get("batch_size")
        per_rank = f" of {batch // results['ranks']}" if isinstance(batch, int) else ""
        facts.append(("MPI ranks", _e(f"{results['ranks']}{per_rank}")))
    items = "\n".join(f"<div><dt>{name}</dt><dd>{value}</dd></div>" for name, value in facts)
    if not results:
        note = '<p class="note">No results.json yet: the run has not finished.</p>\n'
    else:
        note = ""
    return (
        '<section class="summary">\n'
        + (f'<div class="stats">\n{chr(10).join(stats)}\n</div>\n' if stats else "")
        + note
        + f'<dl class="card facts">\n{items}\n</dl>\n</section>'
    )


def _snapshot_table(snap: dict | None) -> str:
    """The snapshot ensemble's scores (``results["snapshot_ensemble"]``, written by
    :func:`nabla.train.snapshots.snapshot_ensemble_results`): each snapshot, then the ensemble
    beside the last snapshot."""
    if not snap or not snap.get("members"):
        return ""

    def row(name: str, scores: dict, css: str = "") -> str:
        epoch = scores.get("epoch")  # 0-based in the file, shown from 1 as everywhere here
        where = [scores.get("cycle"), None if epoch is None else epoch + 1, scores.get("step")]
        accuracy = _metric("accuracy", scores.get("accuracy"))
        nll = _metric("nll", scores.get("nll"), column=True)
        cells = "".join(f"<td>{_e(v)}</td>" for v in [*map(_number, where), accuracy, nll])
        return f"<tr{css}><td>{_e(name)}</td>{cells}</tr>"

    members = snap["members"]
    rows = [row(f"snapshot {k}", m) for k, m in enumerate(members, start=1)]
    rows.append(row("last snapshot", snap.get("last_snapshot") or members[-1]))
    rows.append(row(f"ensemble of {len(members)}", snap["ensemble"], ' class="best"'))
    split = snap.get("split")
    return (
        f"<section>\n<h2>Snapshot ensemble{_e(f' ({split} split)' if split else '')}</h2>\n"
        '<div class="card table">\n<table class="snapshots">\n<thead>\n<tr><th>model</th>'
        "<th>cycle</th><th>epoch</th><th>step</th><th>accuracy</th><th>NLL</th></tr>\n</thead>\n"
        f"<tbody>\n{chr(10).join(rows)}\n</tbody>\n</table>\n</div>\n"
        '<p class="note">The weights at the end of every cosine-restart cycle; the ensemble '
        "averages their predicted probabilities (Huang et al. 2017).</p>\n</section>"
    )


def _figures(plots: Path, names: list[str], results: dict) -> str:
    stems = [
        "loss",
        *(file_stem(n) for n in names),
        "lr",
        "grad_norm",
        "confusion",
        "misclassified",
    ]
    split = (results.get("confusion") or {}).get("split")
    captions = {
        **CAPTIONS,
        "confusion": CAPTIONS["confusion"].format(on=f" on the {split} split" if split else ""),
    }
    for name in names:
        captions[file_stem(name)] = f"{metric_label(name)} after every epoch."
    if (results.get("best") or {}).get("epoch") is not None:
        for stem in ("loss", *(file_stem(n) for n in names)):
            captions[stem] += " The dotted line marks the best epoch."
    cards = []
    for stem in stems:
        path = plots / f"{stem}.png"
        if not path.exists():
            continue
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        caption = captions[stem]
        cards.append(
            f'<figure class="card">\n<img src="data:image/png;base64,{data}" '
            f'alt="{_e(stem)} plot">\n'
            f"<figcaption>{_e(caption)}</figcaption>\n</figure>"
        )
    if not cards:
        return '<section>\n<h2>Figures</h2>\n<p class="note">No figures drawn yet.</p>\n</section>'
    figures = "\n".join(cards)
    return f'<section>\n<h2>Figures</h2>\n<div class="figures">\n{figures}\n</div>\n</section>'


# When a setting matters: the others in the config are shown always. A setting whose rule needs
# a key the config lacks (a hand-written config.toml) is shown too.
SPLIT_FOR_DEV = ("digits", "mnist", "fashion_mnist", "cifar10")  # no dev split: dev_fraction
APPLIES = {
    "hidden": lambda c: c["model"] == "mlp",
    "dropout": lambda c: c["model"] == "mlp",
    "batch_norm": lambda c: c["model"] == "mlp",
    "activation": lambda c: c["model"] in ("mlp", "lenet"),  # the ResNet is built with ReLU
    "depth": lambda c: c["model"] == "resnet",
    "decay_rate": lambda c: _schedule(c).uses_decay_rate,
    "warmup_epochs": lambda c: not _schedule(c).own_warmup,  # 1cycle has its own warmup
    "augment": lambda c: bool(c["augment"]),
    "dev_fraction": lambda c: c["dataset"] in SPLIT_FOR_DEV,
}


def _schedule(config: dict):
    """The class of the config's schedule (a KeyError for one nabla does not know)."""
    return schedules.get(config["schedule"])


def applies(key: str, config: dict) -> bool:
    """Whether setting ``key`` changes anything in a run of ``config`` (``momentum`` does not
    for Adam, ``depth`` does not for an MLP).

    >>> applies("momentum", {"optimizer": "adam"}), applies("momentum", {"optimizer": "sgd"})
    (False, True)
    """
    if registry.owners(key):  # an optimizer's hyperparameter given flat (an older config.toml)
        return config.get("optimizer") in registry.owners(key)
    rule = APPLIES.get(key)
    try:
        return rule is None or bool(rule(config))
    except KeyError:
        return True


def _config_table(config: dict) -> str:
    if not config:
        return ""
    flat = {  # the optimizer's table as optimizer.key rows
        f"{key}.{k}" if isinstance(value, dict) else key: v
        for key, value in config.items()
        for k, v in (value.items() if isinstance(value, dict) else [(key, value)])
    }
    shown = [key for key in flat if applies(key, config)]
    rows = "\n".join(
        f"<tr><td>{_e(key)}</td><td>{_e(_config_value(flat[key]))}</td></tr>" for key in shown
    )
    hidden = [key for key in flat if key not in shown]
    note = (
        f'<p class="note">Not applicable to this run (not shown): {_e(", ".join(hidden))}.</p>\n'
        if hidden
        else ""
    )
    return (
        '<section>\n<h2>Configuration</h2>\n<div class="card table">\n<table class="config">\n'
        f"<tbody>\n{rows}\n</tbody>\n</table>\n</div>\n{note}</section>"
    )


def _epoch_table(epochs: list[dict], names: list[str], best) -> str:
    if not epochs:
        return ""
    splits = [s for s in ("train", "dev") if any(r.get(s) for r in epochs)]
    columns = [(s, n) for s in splits for n in ["loss", *names]]
    head = "".join(f"<th>{_e(split)} {_e(_short(n))}</th>" for split, n in columns)
    rows = []
    for r in epochs:
        cells = "".join(
            f"<td>{_e(_metric(n, (r.get(s) or {}).get(n), column=True))}</td>" for s, n in columns
        )
        lr = r.get("lr")
        time = r.get("time")
        marked = ' class="best"' if r["epoch"] == best else ""
        tag = ' <span class="badge">best</span>' if r["epoch"] == best else ""
        rows.append(
            f"<tr{marked}><td>{r['epoch'] + 1}{tag}</td>{cells}"
            f"<td>{_e(MISSING if lr is None else f'{lr:.3g}')}</td>"
            f"<td>{_e(MISSING if time is None else f'{time:.2f}')}</td></tr>"
        )
    return (
        '<section>\n<h2>Epochs</h2>\n<div class="card table">\n<table class="epochs">\n'
        f"<thead>\n<tr><th>epoch</th>{head}<th>lr</th><th>time (s)</th></tr>\n</thead>\n"
        f"<tbody>\n{chr(10).join(rows)}\n</tbody>\n</table>\n</div>\n</section>"
    )
