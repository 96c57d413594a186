"""AI nodes for any OpenAI-compatible server (openai's AsyncOpenAI). All calls go through ``transport``."""

from nodes.ai import agent, chat, classify, embed  # noqa: F401 - registration by import
