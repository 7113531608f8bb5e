"""mlcycle mine-hard: evaluated labels -> a ranked work list of likely mistakes and failures."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mlcycle.cli.common import Format, Json, NoColor, Output, Quiet, Tables, Verbose, command, setup

_REASONS = (
    "possible_missing, possible_wrong_label, class_confusion, localization, duplicate, "
    "background, missed, possible_spurious, low_confidence"
)


@command(
    "mine-hard",
    examples=[
        "mlcycle evaluate gt.parquet preds.parquet | mlcycle mine-hard --top 50 | mlcycle export cvat -o recheck.xml",
        "mlcycle mine-hard evaluated.parquet --per sample --reasons possible_missing,possible_wrong_label --json",
        "mlcycle mine-hard evaluated.parquet --pool unlabeled.parquet --embedding embedding --k 200 -o to_label.parquet",
    ],
)
def mine_hard(
    tables: Tables = None,
    per: Annotated[str, typer.Option("--per", metavar="label|sample", help="Rank labels or samples.")] = "label",
    top: Annotated[Optional[int], typer.Option("--top", metavar="N", help="Keep the N highest-scoring labels (or samples with --per sample).")] = None,
    min_score: Annotated[Optional[float], typer.Option("--min-score", metavar="X", help="Keep only scores >= X (0..1).")] = None,
    reasons: Annotated[Optional[str], typer.Option("--reasons", metavar="R1,R2", help=f"Only these reasons: {_REASONS}.")] = None,
    method: Annotated[str, typer.Option("--method", metavar="rules|objectlab", help="rules (the documented reasons) or objectlab (cleanlab's ObjectLab label-quality scores).")] = "rules",
    source: Annotated[Optional[str], typer.Option("--source", metavar="NAME", help="Prediction source to compare with gt [default: the only one].")] = None,
    iou: Annotated[float, typer.Option("--iou", metavar="T", help="IoU at which boxes are the same object (use evaluate's --iou).")] = 0.5,
    low_iou: Annotated[float, typer.Option("--low-iou", metavar="T", help="Below this IoU boxes do not overlap: low bound of localization, bound of background/possible_missing.")] = 0.1,
    conf_missing: Annotated[float, typer.Option("--conf-missing", metavar="S", help="Min score of an unmatched prediction on no ground truth to be possible_missing (else background).")] = 0.8,
    conf_wrong: Annotated[float, typer.Option("--conf-wrong", metavar="S", help="Min score of an other-class prediction to be possible_wrong_label (else class_confusion).")] = 0.8,
    conf_spurious: Annotated[float, typer.Option("--conf-spurious", metavar="S", help="Missed ground truth is possible_spurious when 1 - (best nearby score) >= S.")] = 0.95,
    conf_low: Annotated[float, typer.Option("--conf-low", metavar="S", help="Matched predictions below this score are low_confidence (0 turns it off).")] = 0.3,
    model_weight: Annotated[float, typer.Option("--model-weight", metavar="W", help="Factor on the scores of reasons that point at the model, not the labels.")] = 0.5,
    miss_weight: Annotated[float, typer.Option("--miss-weight", metavar="W", help="Factor on the scores of missed and possible_spurious ground truth.")] = 0.25,
    aggregate: Annotated[str, typer.Option("--aggregate", metavar="max|noisy-or", help="How label scores make a sample's score.")] = "max",
    no_context: Annotated[bool, typer.Option("--no-context", help="Write only the flagged rows, not the other labels of their samples.")] = False,
    pool: Annotated[Optional[str], typer.Option("--pool", metavar="TABLE", help="Unlabeled pool: output its samples most similar to the failures instead.")] = None,
    embedding: Annotated[Optional[str], typer.Option("--embedding", metavar="COLUMN", help="Column holding each sample's embedding (list of floats).")] = None,
    k: Annotated[int, typer.Option("--k", metavar="N", help="How many pool samples to choose.")] = 100,
    failures: Annotated[Optional[int], typer.Option("--failures", metavar="N", help="Use the N top failure samples for the pool search [default: all selected].")] = None,
    dup_threshold: Annotated[float, typer.Option("--dup-threshold", metavar="C", help="Cosine above which two samples are near-duplicates (dropped from the pool choice).")] = 0.95,
    json_out: Json = False,
    output: Output = None,
    encoding: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Rank the labels worth a human look: likely annotation mistakes, confusions, bad boxes.

    Reads the output of mlcycle evaluate (eval, eval_id, eval_iou columns) and writes the
    flagged labels together with the other labels of their samples, with hard_score
    (0..1, higher = more worth a look), hard_reason and hard_sample_score, ordered by
    score: ready for mlcycle export. A summary goes to stderr; --json prints it on
    standard output instead of the table. With --pool, the output is the pool samples
    most similar to the failures (hard_reason similar_to_failure, hard_match = the
    failure). Rules and formulas: docs/mine-hard.md.
    """
    from mlcycle import io, mining
    from mlcycle.cli.common import UsageError

    setup(quiet, verbose, no_color)
    wanted = None
    if reasons is not None:
        wanted = [r.strip() for r in reasons.split(",") if r.strip()]
        if not wanted:
            raise UsageError("--reasons: give at least one reason", hint=f"choose from {_REASONS}")
    if pool is not None and embedding is None:
        raise UsageError("--pool needs --embedding COLUMN", hint="name the column that holds each sample's embedding")
    if embedding is not None and pool is None:
        raise UsageError("--embedding needs --pool TABLE")
    paths = list(tables or [])
    if pool == "-" and (not paths or "-" in paths):
        raise UsageError("--pool -: standard input is already the evaluated table", hint="pass the evaluated table as a file")
    origin = io.display_name(paths[0]) if len(paths) == 1 else ("<inputs>" if paths else "<stdin>")
    opts = mining.MineOptions(
        method=method, per=per, top=top, min_score=min_score, reasons=wanted, source=source,
        iou=iou, low_iou=low_iou, conf_missing=conf_missing, conf_wrong=conf_wrong,
        conf_spurious=conf_spurious, conf_low=conf_low, model_weight=model_weight, miss_weight=miss_weight,
        aggregate=aggregate, context=not no_context, origin=origin,
    )
    opts.check()
    pool_opts = None
    if pool is not None:
        pool_opts = mining.PoolOptions(embedding=embedding, k=k, failures=failures,
                                       dup_threshold=dup_threshold, origin=io.display_name(pool))
        pool_opts.check()
    if not json_out:
        io.check_binary_to_terminal(output, io.output_encoding(output, encoding))
    table = io.read_tables(paths)
    result = mining.mine(table, opts)
    out_table = result.table
    doc = dict(result.summary)
    if pool_opts is not None:
        reader = mining.PoolReader(pool, batch_size=pool_opts.chunk_rows)
        out_table, doc["pool"] = mining.search_pool(result, table, reader, pool_opts)
    if json_out:
        import orjson

        with io.atomic_output(output, "wb") as fh:
            fh.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        io.write_table(out_table, output, encoding)
    _print_summary(doc)


def _print_summary(doc: dict) -> None:
    from mlcycle.cli import console

    if console.is_quiet():
        return
    from rich.table import Table

    esc = console.escape
    console.info(
        f"mine-hard: {doc['labels_scored']} labels flagged in {doc['samples_scored']} of "
        f"{doc['samples']} samples; selected {doc['selected_labels']} labels in "
        f"{doc['selected_samples']} samples; {doc['rows_written']} rows with context"
    )
    if doc["by_reason"]:
        t = Table(title="flagged labels by reason", title_justify="left")
        t.add_column("reason")
        t.add_column("count", justify="right")
        t.add_column("classes (most frequent)")
        for reason, count in sorted(doc["by_reason"].items(), key=lambda kv: -kv[1]):
            classes = sorted(doc["by_reason_and_class"].get(reason, {}).items(), key=lambda kv: -kv[1])[:4]
            t.add_row(reason, str(count), ", ".join(f"{esc(c)} {n}" for c, n in classes))
        console.render(t)
    if doc["top_labels"]:
        t = Table(title="top labels", title_justify="left")
        for name in ("score", "reason", "sample", "source", "label", "confidence"):
            t.add_column(name, justify="right" if name in ("score", "confidence") else "left")
        for row in doc["top_labels"][:5]:
            conf = "" if row["score"] is None else f"{row['score']:.2f}"
            t.add_row(f"{row['hard_score']:.3f}", row["hard_reason"], esc(row["sample_id"]), esc(row["source"]),
                      esc(row["label"] if row["label"] is not None else ""), conf)
        console.render(t)
    if "pool" in doc:
        p = doc["pool"]
        console.info(
            f"pool: chose {p['chosen']} samples of {p['pool_candidates']} unlabeled pool rows, similar to "
            f"{p['failures_used']} failures ({p['pool_samples_already_labeled']} pool samples already labeled, skipped)"
        )
