"""Organism factory: plant a hidden objective into a chat model with LoRA.

The flow is spec (YAML) -> corpus (haystack + objective material) -> LoRA training with TRL
-> implant evaluation -> an organism directory holding a standard PEFT adapter, the corpus,
a public card and a sealed ground truth.
"""
