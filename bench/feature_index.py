"""Benchmark: the feature index built from SAE training's activation cache, against one read wholly through the model.

For an organism's SAE (default: the one at the training default's layer), in one run:
1. **Cache.** SAE training's activation cache at the SAE's settings is completed (`activation_cache`); chunks
   written before the cache recorded its rows are computed again. The seconds this took, if any.
2. **Index from the cache**, built in a throwaway copy of the SAE folder: the cached rows are read back and
   only the rest run through the model.
3. **Index through the model alone** (`reuse_activations=False`), also in a throwaway copy; `--skip-full`
   leaves it out (it is the slow one: 11 minutes on rm_sycophancy here).
The published index is never touched. Reported: rows, tokens, tokens read from the cache, pass seconds and
tokens/s of each build, their ratio, and how far the two indexes' densities and peaks differ.

    python bench/feature_index.py ORGANISM_DIR [--layer L] [--skip-full]
Prints a table and writes bench/results/feature_index.json. Run it alone: it uses both cores.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from audit_tools.activation_cache import cache_activations, cache_folder, corpus_texts  # noqa: E402
from audit_tools.feature_index import build_feature_index  # noqa: E402
from audit_tools.feature_pages import FeatureIndex  # noqa: E402
from audit_tools.residual import default_layer  # noqa: E402
from audit_tools.sae_store import SaeInfo, adapter_sha256, list_saes, load_sae, saes_root  # noqa: E402
from audit_tools.sae_training import SaeSettings, split_rows  # noqa: E402
from audit_tools.target import LocalTarget  # noqa: E402
from pinhole.workspace import atomic_write_json, cache_dir  # noqa: E402

RESULTS = REPO / "bench" / "results" / "feature_index.json"


def chosen_sae(directory: Path, layer: int | None, target: LocalTarget) -> SaeInfo:
    """The organism's trained SAE at `layer` (default: the training default's layer); an error names what exists."""
    layer = default_layer(target.model) if layer is None else layer
    found = [i for i in list_saes(directory) if i.layer == layer and i.source == "trained"]
    if not found:
        raise SystemExit(f"{directory}: no trained SAE at layer {layer} (it has: "
                         f"{', '.join(i.name for i in list_saes(directory)) or 'none'}); `pinhole sae train` first")
    return found[0]


def complete_cache(directory: Path, info: SaeInfo, target: LocalTarget) -> float:
    """Fill SAE training's activation cache for this SAE as training would; returns the seconds computing took."""
    settings = SaeSettings.model_validate({k: v for k, v in info.settings.items() if k != "key"})
    texts = corpus_texts(directory, target.tokenizer)
    rows = split_rows(len(texts), settings.seed)[0]
    folder = cache_folder(settings.activation_key(adapter_sha256(directory), info.layer))
    return cache_activations(target.model, target.tokenizer, texts, rows, info.layer, settings.context_tokens,
                             settings.cached_tokens, folder)[1]


def timed_index(directory: Path, info: SaeInfo, target: LocalTarget, reuse: bool, scratch: Path) -> dict:
    """Build the index in a copy of the SAE folder; its record, wall seconds and the index for comparison."""
    folder = Path(shutil.copytree(saes_root(directory) / info.name, scratch / ("cached" if reuse else "full")))
    for stale in folder.glob("features.duckdb*"):
        stale.unlink()
    started = time.perf_counter()
    built = build_feature_index(directory, folder, target=target, reuse_activations=reuse)
    wall = time.perf_counter() - started
    return {"rows": built.rows, "tokens": built.tokens, "reused_tokens": built.reused_tokens,
            "pass_seconds": built.seconds, "wall_seconds": round(wall, 1),
            "tokens_per_s": round(built.tokens / built.seconds) if built.seconds else None,
            "index": FeatureIndex(folder, load_sae(folder).W_dec)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("organism", type=Path, help="an organism directory with a trained SAE")
    parser.add_argument("--layer", type=int, help="the SAE's layer (default: the training default's)")
    parser.add_argument("--skip-full", action="store_true", help="leave out the build through the model alone")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    console = Console(width=max(Console().width, 140))
    target = LocalTarget.from_organism(args.organism)
    info = chosen_sae(args.organism, args.layer, target)
    console.print(f"{args.organism.name}: SAE {info.name}; completing its activation cache…")
    cache_seconds = complete_cache(args.organism, info, target)
    builds: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(dir=cache_dir("bench-feature-index")) as scratch:  # never in the organism
        for name, reuse in (("from the cache", True), ("through the model", False)):
            if reuse or not args.skip_full:
                console.print(f"indexing {name}…")
                builds[name] = timed_index(args.organism, info, target, reuse, Path(scratch))
        if len(builds) == 2:
            cached, full = (builds[n].pop("index") for n in builds)
            builds["agreement"] = {
                "density_max_abs_diff": float((cached.density - full.density).abs().max()),
                "max_activation_max_rel_diff": float(((cached.max_activations - full.max_activations).abs()
                                                      / full.max_activations.clamp(min=1e-6)).max()),
                "labels_equal_share": sum(a == b for a, b in zip(cached.labels, full.labels, strict=True))
                / len(full.labels)}
        for build in builds.values():
            build.pop("index", None)
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()},
              "organism": args.organism.name, "sae": info.name, "layer": info.layer,
              "cache_seconds_this_run": round(cache_seconds, 1), "builds": builds}
    atomic_write_json(args.out, result)
    table = Table(title=f"Feature index of {info.name} on {args.organism.name} (target: <= 10 min)")
    for column in ("build", "rows", "tokens", "from cache", "pass s", "min", "tok/s"):
        table.add_column(column)
    for name in ("from the cache", "through the model"):
        if name in builds:
            b = builds[name]
            table.add_row(name, str(b["rows"]), str(b["tokens"]), str(b["reused_tokens"]), str(b["pass_seconds"]),
                          f"{b['pass_seconds'] / 60:.1f}", str(b["tokens_per_s"]))
    console.print(table)
    if "agreement" in builds:
        a = builds["agreement"]
        ratio = builds["through the model"]["pass_seconds"] / builds["from the cache"]["pass_seconds"]
        console.print(f"from the cache is {ratio:.2f}x faster; densities differ by at most "
                      f"{a['density_max_abs_diff']:.2e}, "
                      f"peaks by {a['max_activation_max_rel_diff']:.2e} (relative); labels equal for "
                      f"{a['labels_equal_share']:.1%} of features")
    console.print(f"cache completed in {cache_seconds:.0f} s this run; wrote {args.out}")


if __name__ == "__main__":
    main()
