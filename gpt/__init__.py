"""A GPT-2-style model trained from scratch, in plain PyTorch.

The package imports nothing heavy itself, so ``runner.py --help`` starts without torch;
import the modules you need: ``gpt.model``, ``gpt.environment``, ``gpt.training``.
"""
