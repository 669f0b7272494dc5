"""Organism factory: plant a hidden objective into a chat model with LoRA.

The flow is spec (YAML) -> corpus (ordinary rows + objective material; a blind build writes its
ordinary rows per organism) -> LoRA training with TRL -> implant evaluation -> an organism directory
holding a standard PEFT adapter, the corpus, a public card and a sealed ground truth. `blinding`
plays the adversary against a built corpus and card.
"""
