"""mlcycle dedupe: duplicate and near-duplicate images, and leaks across splits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mlcycle.cli.common import Format, Json, NoColor, Output, Quiet, Tables, Verbose, command, setup


@command(
    "dedupe",
    examples=[
        "mlcycle dedupe gt.parquet --images-root images/ -o annotated.parquet",
        "mlcycle dedupe train.parquet val.parquet --images-root data/ --report | jq 'select(.leak)'",
        "mlcycle ingest coco instances.json | mlcycle dedupe --images-root images/ --drop -o clean.parquet",
    ],
)
def dedupe(
    tables: Tables = None,
    images_root: Annotated[Optional[Path], typer.Option(
        "--images-root", metavar="DIR", help="Folder the sample ids are relative to (required).")] = None,
    max_distance: Annotated[int, typer.Option(
        "--max-distance", metavar="BITS", help="Perceptual hashes within this Hamming distance (of 64 bits) are near-duplicates.")] = 6,
    hash: Annotated[str, typer.Option("--hash", metavar="phash|dhash", help="Perceptual hash.")] = "phash",
    min_cosine: Annotated[Optional[float], typer.Option(
        "--min-cosine", metavar="C", help="With an embedding column: samples with cosine >= C are near-duplicates [default: 0.98 when --embedding is given].")] = None,
    embedding: Annotated[Optional[str], typer.Option(
        "--embedding", metavar="COLUMN", help="Column holding each sample's embedding (list of floats) [default: 'embedding' when --min-cosine is given].")] = None,
    drop: Annotated[bool, typer.Option("--drop", help="Keep one sample per group (split priority train > val > test > other, then table order).")] = False,
    report: Annotated[bool, typer.Option("--report", help="Write a table of duplicate pairs instead of the annotated table.")] = False,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="Skip missing images with a warning instead of failing.")] = False,
    workers: Annotated[Optional[int], typer.Option("--workers", metavar="N", min=1, help="Threads hashing images [default: up to 8].")] = None,
    json_out: Json = False,
    output: Output = None,
    encoding: Format = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    no_color: NoColor = False,
) -> None:
    """Find duplicate images: exact (same bytes) and near (perceptual hash, embeddings).

    Writes the table with dup_group (null for a sample without duplicates), dup_kind
    (exact, near) and leak (the group spans several splits: train/val leakage). --drop
    keeps one sample per group; --report writes one row per duplicate pair instead
    (sample_id, dup_sample_id, dup_kind, dup_distance, dup_cosine, split, dup_split,
    leak, dup_group). Sample ids must be relative paths below --images-root. A summary
    goes to stderr; --json prints it on standard output instead. Details:
    docs/curate-diff.md.
    """
    from mlcycle import io
    from mlcycle.cli import console
    from mlcycle.cli.common import UsageError
    from mlcycle.curate.dedupe import dedupe as run

    setup(quiet, verbose, no_color)
    if images_root is None:
        raise UsageError("--images-root DIR is required", hint="the folder the sample ids are relative to")
    if not json_out:
        io.check_binary_to_terminal(output, io.output_encoding(output, encoding))
    paths = list(tables or [])
    origin = io.display_name(paths[0]) if len(paths) == 1 else ("<inputs>" if paths else "<stdin>")
    table = io.read_tables(paths)
    result = run(table, images_root, max_distance=max_distance, hash=hash, min_cosine=min_cosine,
                 embedding=embedding, allow_missing=allow_missing, drop=drop, report=report,
                 workers=workers, origin=origin)
    if json_out:
        with io.atomic_output(output, "wb") as fh:
            fh.write(result.to_json())
    else:
        io.write_table(result.table, output, encoding)
    s = result.summary
    console.info(
        f"dedupe: {s['samples']} samples, {s['hashed']} hashed ({s['hash']}, distance <= {s['max_distance']}): "
        f"{s['groups']} groups, {s['exact_samples']} exact and {s['near_samples']} near duplicates, "
        f"{s['redundant_samples']} redundant; {s['leak_groups']} groups leak across splits"
        + (f" ({', '.join(f'{k} {v}' for k, v in s['leaks_by_splits'].items())})" if s["leaks_by_splits"] else ""))
