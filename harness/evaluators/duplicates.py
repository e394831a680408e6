"""Side effects done twice: a mutating action repeated after it succeeded, an after-call
step (a confirmation message) sent twice."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.evaluators.base import UNIT_COUNT, BaseEvaluator, MetricInfo, Score
from harness.trace import conventions as c

if TYPE_CHECKING:
    from harness.trace.instance import Instance

__all__ = ["Duplicates"]


class Duplicates(BaseEvaluator):
    """Mutating actions and after-call steps that did the same thing twice in one call.

    - ``duplicate_actions`` (count, per agent layer that has a span in the call, 0 when it
      did nothing twice): mutating actions (``action.mutating = true``) that repeat an
      earlier one of the same layer with
      the same ``action.name`` and ``action.key`` (the idempotency key the service gives its
      action: what it acts on), where the earlier one succeeded (status not error, approval
      not ``denied``). A retry after a failure is not a duplicate; a retry after a success
      is, whether the database then refused it or not: the write was sent twice. Actions
      are taken in start order; those without ``action.key`` cannot be compared and are
      left out (name your actions' keys with ``harness_instrument.action(..., key=...)``).
    - ``workflow_runs`` (count, per call with after-call spans): after-call workflow roots
      (``agent.layer = workflow`` spans without a parent in the instance).
    - ``duplicate_workflow_steps`` (count, per call with after-call spans): steps (direct
      children of the workflow roots) that ended without error although a step of the same
      name had already ended without error under an earlier root or earlier in the same
      root: the confirmation sent twice, the CRM updated twice.

    ``detail`` names what was repeated.
    """

    name = "duplicates"
    metrics = (
        MetricInfo(
            "duplicate_actions",
            UNIT_COUNT,
            "mutating actions repeated after they succeeded, per layer",
        ),
        MetricInfo(
            "workflow_runs",
            UNIT_COUNT,
            "after-call workflow runs of one call",
            layer=c.LAYER_WORKFLOW,
        ),
        MetricInfo(
            "duplicate_workflow_steps",
            UNIT_COUNT,
            "after-call steps that ran to the end twice",
            layer=c.LAYER_WORKFLOW,
        ),
    )

    def evaluate(self, instance: Instance) -> list[Score]:
        out: list[Score] = []
        by_layer: dict[str, list] = {}
        unkeyed: dict[str, int] = {}
        for a in sorted(instance.actions, key=lambda a: (a.span.start_ns, a.span.span_id)):
            if a.mutating is not True:
                continue
            layer = a.layer or "unknown"
            if a.span.attributes.get(c.ACTION_KEY) is None:
                unkeyed[layer] = unkeyed.get(layer, 0) + 1
                continue
            by_layer.setdefault(layer, []).append(a)
        ran = [ly for ly in c.LAYERS if instance.layers.get(ly)]
        for layer in sorted({*by_layer, *unkeyed, *ran}):
            done: set[tuple[str, str]] = set()
            repeats = []
            for a in by_layer.get(layer, []):
                key = (a.name, str(a.span.attributes.get(c.ACTION_KEY)))
                if key in done:
                    repeats.append(f"{a.name} [{key[1]}]")
                elif a.status != c.STATUS_ERROR and a.approval != c.APPROVAL_DENIED:
                    done.add(key)
            out.append(
                Score(
                    "duplicate_actions",
                    float(len(repeats)),
                    UNIT_COUNT,
                    layer=layer,
                    detail=("repeated after success: " + ", ".join(repeats) if repeats else "")
                    + (
                        f" ({unkeyed[layer]} mutating actions without action.key not compared)"
                        if unkeyed.get(layer)
                        else ""
                    ),
                )
            )
        roots = instance.workflow_roots
        if roots:
            finished: set[str] = set()
            again = []
            for step in instance.workflow:
                if step.status == c.STATUS_ERROR:
                    continue
                if step.name in finished:
                    again.append(step.name)
                finished.add(step.name)
            out.append(
                Score("workflow_runs", float(len(roots)), UNIT_COUNT, layer=c.LAYER_WORKFLOW)
            )
            out.append(
                Score(
                    "duplicate_workflow_steps",
                    float(len(again)),
                    UNIT_COUNT,
                    layer=c.LAYER_WORKFLOW,
                    detail="ran twice: " + ", ".join(again) if again else "",
                )
            )
        return out
