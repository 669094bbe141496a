"""From a finished run to production: champion/challenger comparison, promotion through MLflow's Model
Registry, the request log and what is read from it (health, drift, new golden sets).

Modules (each imports its heavy libraries — numpy, mlflow — inside the functions that need them):

- :mod:`~ftframe.lifecycle.bootstrap`: paired bootstrap of every metric plugin's values over examples;
- :mod:`~ftframe.lifecycle.compare`: what ``ftframe compare A B`` decides (sides, pairing, gates, verdict);
- :mod:`~ftframe.lifecycle.compare_report`: its tables, Markdown/HTML report and plot;
- :mod:`~ftframe.lifecycle.registry`: ``ftframe promote`` and ``models:/NAME@alias`` resolution (MLflow);
- :mod:`~ftframe.lifecycle.request_log`: the request log's JSONL schema, its rotating writer and reader;
- :mod:`~ftframe.lifecycle.variants`: a challenger beside the champion in ``ftframe serve`` (loaded as a
  second adapter on a shared base, or on its own) and shadow/canary routing (sticky per user);
- :mod:`~ftframe.lifecycle.drift`: the drift score between served and training prompts;
- :mod:`~ftframe.lifecycle.monitor`: ``ftframe monitor LOG --against RUN`` (latency, errors, lengths, drift)
  and drawing a golden-set candidate file from a log.
"""

from ftframe.errors import FtframeError


class LifecycleError(FtframeError):
    """A comparison, promotion or log cannot be used as given (the message says what to do)."""


class PromotionRefused(FtframeError):
    """A promotion was refused (gate, comparison); nothing was registered or moved."""

    exit_code = 1
