# Table I "Diffusion Policy from scratch" at CPU size: no policy pretraining, no CLAMP tokens,
# trained on the held-out task's demos only (see the base for data and protocol).
_base_ = ["../_base_/policies/aloha_chunk.py"]
