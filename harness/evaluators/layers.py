"""Evaluators of the background and after-call layers: workflow completion and risk."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.evaluators.base import UNIT_BOOL, UNIT_COUNT, UNIT_MS, BaseEvaluator, MetricInfo, Score
from harness.trace import conventions as c

if TYPE_CHECKING:
    from harness.trace.instance import Instance


class Workflow(BaseEvaluator):
    """Whether the after-call workflow completed, and how long it took.

    The workflow is every span with ``agent.layer = workflow``.

    - ``workflow_completed`` (bool, per call): 1 when there is at least one workflow root
      (a workflow span whose parent is not in the instance) and no workflow span has error
      status; else 0, with the failed spans (name and status message) in ``detail``.
    - ``workflow_duration`` (ms, per call, only when completed): from the earliest start to
      the latest end of all workflow spans.

    Without any workflow span there is no Score, unless ``required=True`` (the deployment
    has an after-call workflow, so its absence is a failure): then ``workflow_completed``
    is 0 with detail "no workflow spans". An instance the collector marked incomplete
    says why in its ``incomplete_reason``, which goes into ``detail``.
    """

    name = "workflow"
    metrics = (
        MetricInfo(
            "workflow_completed",
            UNIT_BOOL,
            "the after-call workflow completed",
            layer=c.LAYER_WORKFLOW,
        ),
        MetricInfo(
            "workflow_duration",
            UNIT_MS,
            "first workflow span start to last end",
            layer=c.LAYER_WORKFLOW,
        ),
    )

    def __init__(self, required: bool = False) -> None:
        self.required = required

    def evaluate(self, instance: Instance) -> list[Score]:
        spans = instance.layers.get(c.LAYER_WORKFLOW, ())
        if not spans:
            if not self.required:
                return []
            why = "no workflow spans"
            if not instance.complete and instance.incomplete_reason:
                why += f" (instance incomplete: {instance.incomplete_reason})"
            return [Score("workflow_completed", 0.0, UNIT_BOOL, layer=c.LAYER_WORKFLOW, detail=why)]
        failed = [s for s in spans if s.is_error]
        roots = instance.workflow_roots
        if failed or not roots:
            parts = [f"{s.name}: {s.status_message}".rstrip(": ") for s in failed]
            if not roots:
                parts.append("no workflow root span")
            return [
                Score(
                    "workflow_completed",
                    0.0,
                    UNIT_BOOL,
                    layer=c.LAYER_WORKFLOW,
                    detail="failed: " + "; ".join(parts),
                )
            ]
        start = min(s.start_ns for s in spans)
        end = max(s.end_ns for s in spans)
        steps = [w.name for w in instance.workflow]
        return [
            Score(
                "workflow_completed",
                1.0,
                UNIT_BOOL,
                layer=c.LAYER_WORKFLOW,
                detail=f"steps: {', '.join(steps)}" if steps else "",
            ),
            Score(
                "workflow_duration",
                max(0, end - start) / 1e6,
                UNIT_MS,
                layer=c.LAYER_WORKFLOW,
                detail=f"{len(spans)} workflow spans",
            ),
        ]


class Risk(BaseEvaluator):
    """Mutating actions per layer, and those done without approval.

    Actions are spans carrying ``action.name`` (see :attr:`Instance.actions`), grouped by
    their ``agent.layer`` (``unknown`` when absent). For each layer with at least one action:

    - ``mutating_actions`` (count): actions with ``action.mutating = true``.
    - ``unapproved_mutations`` (count): mutating actions whose ``action.approval`` is
      ``skipped`` or absent, i.e. data changed without an approval. A ``denied`` action is
      not counted: the approval gate did its job.

    ``detail`` names the actions. No actions, no Score.
    """

    name = "risk"
    metrics = (
        MetricInfo("mutating_actions", UNIT_COUNT, "actions that mutate data, per layer"),
        MetricInfo(
            "unapproved_mutations", UNIT_COUNT, "mutating actions without approval, per layer"
        ),
    )

    def evaluate(self, instance: Instance) -> list[Score]:
        by_layer: dict[str, list] = {}
        for a in instance.actions:
            by_layer.setdefault(a.layer or "unknown", []).append(a)
        out = []
        for layer in sorted(by_layer):
            acts = by_layer[layer]
            mutating = [a for a in acts if a.mutating is True]
            unapproved = [
                a for a in mutating if a.approval is None or a.approval == c.APPROVAL_SKIPPED
            ]
            out.append(
                Score(
                    "mutating_actions",
                    float(len(mutating)),
                    UNIT_COUNT,
                    layer=layer,
                    detail=", ".join(a.name for a in mutating),
                )
            )
            out.append(
                Score(
                    "unapproved_mutations",
                    float(len(unapproved)),
                    UNIT_COUNT,
                    layer=layer,
                    detail=", ".join(
                        f"{a.name} (approval: {a.approval or 'none'})" for a in unapproved
                    ),
                )
            )
        return out
