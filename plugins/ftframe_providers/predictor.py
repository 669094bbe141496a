"""A :class:`ftframe.api.Predictor` over a provider's chat-completions endpoint.

The same interface as a local model, so the same metrics, gate and report apply to a provider-tuned
model. Chat endpoints return generated text, not the log-likelihood of a given reply, so ``score``
(``eval.mode=score``) is refused with the fix to apply; the backends refuse it at configuration time too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from ftframe.api import Message
from ftframe.errors import FtframeError
from ftframe_providers.jsonl import provider_message

Complete = Callable[[list[Message], int], str]
"""``(messages, max_tokens) -> reply text`` for one conversation."""

SCORE_UNSUPPORTED = ("eval.mode={mode} needs the log-likelihood of every label, which a provider's chat "
                     "endpoint does not return; use eval.mode=generate with backend={backend}.")


def chat_messages(prompt: Sequence[Message]) -> list[Message]:
    """A conversation as a chat-completions request takes it (no training-only fields such as ``weight``)."""
    return [{k: v for k, v in provider_message(m).items() if k != "weight"} for m in prompt]


class ChatPredictor:
    """Greedy (temperature 0) answers from a remote model, ``concurrency`` requests at a time."""

    def __init__(self, complete: Complete, *, name: str, backend: str, concurrency: int = 4):
        self.complete, self.name, self.backend, self.concurrency = complete, name, backend, max(1, concurrency)

    def generate(self, prompts: Sequence[list[Message]], *, max_new_tokens: int,
                 progress: Callable[[int], None] | None = None) -> list[str]:
        def one(prompt: list[Message]) -> str:
            reply = (self.complete(chat_messages(prompt), max_new_tokens) or "").strip()
            if progress:
                progress(1)
            return reply

        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="ftframe-chat")
        futures = [pool.submit(one, p) for p in prompts]
        try:
            return [f.result() for f in futures]
        finally:  # after a failure (a bad key, say) the queued requests are dropped, not sent
            pool.shutdown(wait=True, cancel_futures=True)

    def score(self, prompts: Sequence[list[Message]], candidates: Sequence[str], *,
              progress: Callable[[int], None] | None = None) -> list[list[float]]:
        raise FtframeError(SCORE_UNSUPPORTED.format(mode="score", backend=self.backend))
