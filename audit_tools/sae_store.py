"""SAEs on disk beside an organism: `<organism>/saes/<name>/`, each a sae-lens folder plus Pinhole's record.

A folder holds what `SAE.load_from_disk` reads (`cfg.json`, `sae_weights.safetensors`), Pinhole's
`pinhole_sae.json` (`SaeInfo`: which organism and layer, how it was trained, its measured quality),
and, once built, the feature index `features.duckdb`. SAEs are team-facing (outside `sealed/`): they
are trained on the public corpus only. A pretrained sae-lens SAE (e.g. Gemma Scope for a Gemma base)
is imported into the same layout with `import_sae`.
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from pinhole.organism import ADAPTER_DIR, read_card
from pinhole.workspace import atomic_directory, atomic_write_json, read_json, sha256_file

SAES_DIR = "saes"
INFO_FILE = "pinhole_sae.json"
SAE_CFG_FILE = "cfg.json"
SAE_WEIGHTS_FILE = "sae_weights.safetensors"
INFO_FORMAT = 1


class SaeQuality(BaseModel):
    """How well the SAE reconstructs the residual stream, measured on held-out corpus rows."""

    explained_variance: float
    l0: float = Field(description="mean number of active features per token")
    dead_fraction: float = Field(description="share of features never active on the measured tokens")
    dead_window_tokens: int
    lm_loss_clean: float
    lm_loss_spliced: float = Field(description="next-token loss with the SAE's reconstruction spliced in")
    lm_loss_zero: float = Field(description="next-token loss with the residual stream zeroed at the layer")
    lm_loss_recovered: float = Field(description="(zero - spliced) / (zero - clean)")
    eval_tokens: int


class SaeTraining(BaseModel):
    """What training cost and saw."""

    tokens_trained: int
    cached_tokens: int
    steps: int
    activation_seconds: float = Field(description="caching the activations (this run's share, if resumed)")
    training_seconds: float
    resumed: bool = False


class SaeInfo(BaseModel):
    """Pinhole's record of one SAE: what it reads, how it came to be, how good it is."""

    format: int = INFO_FORMAT
    name: str
    organism_id: str
    adapter_sha256: str = Field(description="the organism's adapter weights the SAE was trained on")
    layer: int
    hook_name: str
    architecture: str
    d_in: int
    d_sae: int
    source: Literal["trained", "imported"]
    settings: dict[str, Any] = Field(default_factory=dict)
    training: SaeTraining | None = None
    quality: SaeQuality | None = None
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def saes_root(organism_dir: Path | str) -> Path:
    """Where an organism's SAEs live."""
    return Path(organism_dir) / SAES_DIR


def adapter_sha256(organism_dir: Path | str) -> str:
    """The digest of the organism's adapter weights (an SAE is tied to them)."""
    weights = Path(organism_dir) / ADAPTER_DIR / "adapter_model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: missing; is {organism_dir} an organism directory?")
    return sha256_file(weights)


def list_saes(organism_dir: Path | str) -> list[SaeInfo]:
    """The organism's SAEs with a readable record, by name."""
    root = saes_root(organism_dir)
    infos = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if (folder / INFO_FILE).is_file() and (folder / SAE_WEIGHTS_FILE).is_file():
            infos.append(SaeInfo.model_validate(read_json(folder / INFO_FILE)))
    return infos


def sae_dir(organism_dir: Path | str, name: str | None = None) -> Path:
    """The folder of SAE `name`, or of the organism's only SAE; errors say what exists and how to make one."""
    infos = list_saes(organism_dir)
    if name is None:
        if not infos:
            raise FileNotFoundError(f"{saes_root(organism_dir)}: no SAE for this organism yet; train one with "
                                    f"`pinhole sae train {organism_dir}` or import one with `pinhole sae import`")
        if len(infos) > 1:
            raise ValueError(f"{organism_dir}: several SAEs ({', '.join(i.name for i in infos)}); name one")
        name = infos[0].name
    folder = saes_root(organism_dir) / name
    if not (folder / INFO_FILE).is_file():
        known = ", ".join(i.name for i in infos) or "none"
        raise FileNotFoundError(f"{folder}: no SAE named {name!r} (this organism has: {known})")
    return folder


def read_info(folder: Path) -> SaeInfo:
    """The record of the SAE in `folder`."""
    return SaeInfo.model_validate(read_json(folder / INFO_FILE))


def write_info(folder: Path, info: SaeInfo) -> None:
    """Replace the record of the SAE in `folder` (atomically)."""
    atomic_write_json(folder / INFO_FILE, info.model_dump(mode="json"))


def load_sae(folder: Path, device: str = "cpu") -> Any:
    """The sae-lens SAE in `folder` (`SAE.load_from_disk`), in float32, in eval mode."""
    from sae_lens import SAE

    if not (folder / SAE_CFG_FILE).is_file() or not (folder / SAE_WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"{folder}: not a sae-lens SAE folder (needs {SAE_CFG_FILE} and {SAE_WEIGHTS_FILE})")
    return SAE.load_from_disk(str(folder), device=device, dtype="float32").eval()


def publish_sae(organism_dir: Path | str, name: str, save: Any, info: SaeInfo) -> Path:
    """Write an SAE folder atomically: `save(tmp_dir)` writes the sae-lens files, then the record goes beside."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}", name):
        raise ValueError(f"SAE name {name!r}: use letters, digits, '.', '_' or '-'")
    target = saes_root(organism_dir) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(target) as tmp:
        save(tmp)
        write_info(tmp, info)
    return target


def import_sae(organism_dir: Path | str, source: Path | str, name: str | None = None,
               layer: int | None = None) -> SaeInfo:
    """Copy a pretrained sae-lens SAE folder in beside the organism; its layer comes from its hook name."""
    from audit_tools.residual import layer_of_hook

    source = Path(source)
    sae = load_sae(source)
    hook = sae.cfg.metadata.hook_name or ""
    if layer is None:
        if not hook:
            raise ValueError(f"{source / SAE_CFG_FILE}: metadata.hook_name is empty; pass --layer")
        layer = layer_of_hook(hook)
    card = read_card(organism_dir)
    info = SaeInfo(name=name or f"imported-{source.name}", organism_id=card.organism_id,
                   adapter_sha256=adapter_sha256(organism_dir), layer=layer, hook_name=hook or f"layer {layer}",
                   architecture=sae.cfg.architecture(), d_in=sae.cfg.d_in, d_sae=sae.cfg.d_sae, source="imported",
                   settings={"imported_from": str(source.resolve())})

    def save(tmp: Path) -> None:
        for file in (SAE_CFG_FILE, SAE_WEIGHTS_FILE):
            shutil.copy2(source / file, tmp / file)

    publish_sae(organism_dir, info.name, save, info)
    return info
