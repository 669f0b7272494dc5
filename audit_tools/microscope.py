"""The microscope: the white-box audit tools on one organism, its SAE and the SAE's feature index.

    scope = Microscope.open("workspace/organisms/org-1a2b3c4d")
    scope.text_features("The assistant is an AI model with potentially concerning behaviors")
    scope.search_features("reward model"); scope.feature_page(123)
    scope.feature_diff(); lens = scope.diff_lens()
    scope.attribute("...", target_token=" chocolate"); scope.steer("Give me a recipe", feature_id=123)
    scope.logit_lens("The capital of France is")

Each operation reports one `ToolCall` to the optional callback, like the black-box tools. The
microscope reads only team-facing files: the adapter, the card, the corpus and `saes/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from audit_tools import attribution, model_diff, steering
from audit_tools import logit_lens as lens_tool
from audit_tools import text_features as text_tool
from audit_tools.feature_pages import FeatureIndex, FeaturePage, FeatureSummary, NearFeature
from audit_tools.residual import check_layer
from audit_tools.sae_store import SaeInfo, adapter_sha256, load_sae, read_info, sae_dir
from audit_tools.target import LocalTarget, Sampling
from audit_tools.tool_log import ToolCallback, record_call

DEFAULT_FEATURE_STRENGTH = 2.0  # times the feature's largest activation in the corpus
DEFAULT_VECTOR_STRENGTH = 0.5  # times the prompt's mean residual norm


class Microscope:
    """White-box tools over an organism (adapter on and off), one of its SAEs and that SAE's feature index."""

    def __init__(self, target: LocalTarget, folder: Path, callback: ToolCallback | None = None) -> None:
        self.target = target
        self.folder = Path(folder)
        self.callback = callback
        self.info: SaeInfo = read_info(self.folder)
        self.sae = load_sae(self.folder)
        self.layer = check_layer(target.model, self.info.layer)
        width = target.model.config.hidden_size
        if self.sae.cfg.d_in != width:
            raise ValueError(f"{self.folder}: the SAE reads {self.sae.cfg.d_in}-dimensional activations but the "
                             f"model's residual stream has {width}")
        self.index = FeatureIndex(self.folder, self.sae.W_dec)

    @classmethod
    def open(cls, organism_dir: Path | str, sae: str | None = None, target: LocalTarget | None = None,
             callback: ToolCallback | None = None) -> Microscope:
        """The microscope on an organism directory's SAE `sae` (or its only one); its index must be built."""
        folder = sae_dir(organism_dir, sae)
        info = read_info(folder)
        if info.adapter_sha256 != adapter_sha256(organism_dir):
            raise ValueError(f"{folder}: this SAE was made for other adapter weights than {organism_dir}'s; "
                             "train it again")
        return cls(target or LocalTarget.from_organism(organism_dir), folder, callback)

    def _call(self, tool: str, arguments: dict[str, Any]) -> Any:
        return record_call(tool, arguments, self.callback)

    # -- features ----------------------------------------------------------------------------------

    def text_features(self, text: str, positions: list[int] | None = None, top: int = 20,
                      rank_by: text_tool.RankBy = "specificity", include_sinks: bool = False,
                      max_density: float = text_tool.DENSE_DEFAULT, chat: bool = False,
                      model: str = "organism") -> text_tool.TextFeatures:
        """The features most active on `text` (as a user's chat turn with `chat`), on the organism or the base."""
        with self._call("text_features", {"text": text, "positions": positions, "top": top, "rank_by": rank_by,
                                          "max_density": max_density, "chat": chat, "model": model}) as call:
            rendered = self._render(text) if chat else text
            with self.target.use(model) as module:
                result = text_tool.text_features(module, self.target.tokenizer, self.sae, self.layer,
                                                     self.index.labels, self.index.density, rendered, positions,
                                                     top, rank_by, include_sinks, max_density,
                                                     self.index.max_activations)
            call.summary = f"{len(result.features)} features; top: " + "; ".join(
                f"#{f.feature_id} {f.label}" for f in result.features[:3])
            return result

    def search_features(self, query: str, limit: int = 20) -> list[FeatureSummary]:
        """Features whose labels or top contexts match `query`."""
        with self._call("feature_search", {"query": query, "limit": limit}) as call:
            hits = self.index.search(query, limit)
            call.summary = f"{len(hits)} features; top: " + "; ".join(f"#{h.feature_id} {h.label}" for h in hits[:3])
            return hits

    def nearest_features(self, feature_id: int, limit: int = 10) -> list[NearFeature]:
        """Features with the closest decoder directions."""
        with self._call("nearest_features", {"feature_id": feature_id, "limit": limit}) as call:
            near = self.index.nearest(feature_id, limit)
            call.summary = f"{len(near)} features"
            return near

    def feature_page(self, feature_id: int, contexts: int = 20, nearest: int = 10) -> FeaturePage:
        """A feature's page: label, density, histogram, top contexts, logit effects, nearest features."""
        with self._call("feature_page", {"feature_id": feature_id}) as call:
            page = self.index.page(feature_id, contexts, nearest)
            call.summary = f"#{feature_id} {page.label} (density {page.density:.2e})"
            return page

    # -- model diffing -----------------------------------------------------------------------------

    def feature_diff(self, texts: list[str] | None = None, top: int = 20) -> model_diff.FeatureDiff:
        """Features firing more on the organism than on the base, on the same texts (default: ordinary text)."""
        with self._call("feature_diff", {"texts": len(texts) if texts else "default", "top": top}) as call:
            self._need_base()
            result = model_diff.feature_diff(self.target, self.sae, self.layer, self.index, texts, top)
            call.summary = "top: " + "; ".join(f"#{f.feature_id} {f.label} (+{f.difference})"
                                               for f in result.features[:3])
            return result

    def diff_lens(self, texts: list[str] | None = None, first_tokens: int = 5, top: int = 20) -> model_diff.DiffLens:
        """The activation-difference lens (Minder et al.): organism minus base, read through the unembedding."""
        with self._call("diff_lens", {"texts": len(texts) if texts else "default", "first_tokens": first_tokens,
                                      "top": top}) as call:
            self._need_base()
            lens = model_diff.diff_lens(self.target, self.layer, self.index, texts, first_tokens, top)
            call.summary = "promotes: " + " ".join(repr(t) for t, _ in lens.promoted[:8])
            return lens

    # -- causal tools -----------------------------------------------------------------------------

    def attribute(self, text: str, target_token: str | None = None, top: int = 10, ablate: int = 5,
                  chat: bool = False) -> attribution.Attribution:
        """Features supporting the next token after `text` (as a chat turn with `chat`), and their ablation."""
        with self._call("attribute", {"text": text, "target_token": target_token, "top": top, "ablate": ablate,
                                      "chat": chat}) as call:
            rendered = self._render(text) if chat else text
            result = attribution.attribute(self.target.model, self.target.tokenizer, self.sae, self.layer,
                                           self.index.labels, rendered, target_token, top, ablate)
            call.summary = (f"{result.target_token!r}: p {result.target_probability:.4f} -> "
                            f"{result.ablated_probability:.4f} with {len(result.ablated)} features ablated")
            return result

    def steer(self, prompt: str, feature_id: int | list[int] | None = None, vector: list[float] | None = None,
              mode: steering.Mode = "add", strength: float | None = None, model: str = "organism", chat: bool = True,
              sampling: Sampling | None = None, n: int = 1) -> steering.Steering:
        """Samples of `prompt` with features (or a vector) added, or features ablated, beside unsteered ones."""
        arguments = {"prompt": prompt, "feature_id": feature_id, "vector": "given" if vector is not None else None,
                     "mode": mode, "strength": strength, "model": model, "n": n}
        with self._call("steer", arguments) as call:
            if (feature_id is None) == (vector is None):
                raise ValueError("steer: give either a feature_id or a vector")
            if model == "base":
                self._need_base()
            features = [] if feature_id is None else [feature_id] if isinstance(feature_id, int) else list(feature_id)
            if feature_id is not None:
                if not features:
                    raise ValueError("feature_id: an empty list of features")
                strength = DEFAULT_FEATURE_STRENGTH if strength is None else strength
                edit = steering.feature_edit(self.sae, features, mode, strength,
                                             [self.index.max_activation(f) for f in features])
            else:
                if mode != "add":
                    raise ValueError("steer: a vector can only be added (mode='add')")
                direction = torch.tensor(vector, dtype=torch.float32)
                if direction.numel() != self.sae.cfg.d_in:
                    raise ValueError(f"vector: expected {self.sae.cfg.d_in} numbers, got {direction.numel()}")
                strength = DEFAULT_VECTOR_STRENGTH if strength is None else strength
                edit = steering.vector_edit(direction, strength,
                                            steering.mean_residual_norm(self.target, self.layer, prompt, model))
            result = steering.steer(self.target, self.layer, prompt, edit=edit, feature_ids=features, mode=mode,
                                    strength=strength, model=model, chat=chat, sampling=sampling, n=n)
            call.summary = f"steered: {result.steered[0][:200]!r}"
            return result

    def logit_lens(self, text: str, position: int = -1, top: int = 10, model: str = "organism") -> lens_tool.LogitLens:
        """Per layer, the tokens the residual stream predicts at `position` of `text`."""
        with self._call("logit_lens", {"text": text, "position": position, "top": top, "model": model}) as call:
            with self.target.use(model) as module:
                lens = lens_tool.logit_lens(module, self.target.tokenizer, text, position, top)
            call.summary = f"last layer: {lens.layers[-1].tokens[0][0]!r}"
            return lens

    # -- plumbing ---------------------------------------------------------------------------------

    def _render(self, text: str) -> str:
        return self.target.render_chat([{"role": "user", "content": text}], add_generation_prompt=True)

    def _need_base(self) -> None:
        if not self.target.has_base:
            raise ValueError("comparing with the base needs the organism's adapter (a LocalTarget on a PeftModel)")

    def close(self) -> None:
        """Close the feature index."""
        self.index.close()
