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

    - ``workflow_completed`` (bool, per call): 1 when the workflow's root has arrived (a
      workflow span without a parent, with a remote parent, or with a parent of another
      layer: :meth:`Instance.layer_finished`), no workflow span's own parent is missing (a
      step whose root never came: the workflow died midway), and no workflow span has error
      status; else 0, with the failed spans (name and status message) in ``detail``.
    - ``workflow_duration`` (ms, per call, only when completed): from the earliest start to
      the latest end of all workflow spans.

    Without any workflow span there is no Score, unless the call required one: with
    ``required=True`` (the deployment has an after-call workflow, so its absence is a
    failure), or when the caller side-file says ``workflow_expected: true`` (the harness
    sets it when the scenario expects an after-call step, or when the deployment under
    test has shown an after-call workflow in the session). Then ``workflow_completed`` is
    0 with detail "no workflow spans". An instance the collector marked incomplete says
    why in its ``incomplete_reason``, which goes into ``detail``.
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
            expected = (instance.caller or {}).get("workflow_expected") is True
            if not (self.required or expected):
                return []
            why = "no workflow spans"
            if not instance.complete and instance.incomplete_reason:
                why += f" (instance incomplete: {instance.incomplete_reason})"
            return [Score("workflow_completed", 0.0, UNIT_BOOL, layer=c.LAYER_WORKFLOW, detail=why)]
        failed = [s for s in spans if s.is_error]
        finished = instance.layer_finished(c.LAYER_WORKFLOW)
        orphans = [
            s
            for s in spans
            if s.parent_span_id is not None
            and instance.parent(s) is None
            and not s.parent_is_remote
        ]
        if failed or not finished or orphans:
            parts = [f"{s.name}: {s.status_message}".rstrip(": ") for s in failed]
            if orphans:
                names = ", ".join(sorted({s.name for s in orphans}))
                parts.append(f"the root of {names} never arrived (the workflow died midway?)")
            elif not finished:
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
    their ``agent.layer`` (``unknown`` when absent).

    - ``mutating_actions`` (count, per layer with at least one action): actions with
      ``action.mutating = true``.
    - ``unapproved_mutations`` (count, per layer with at least one action, and per agent
      layer (conversational, background, workflow) that has a span in the call, where it
      is 0 without actions): mutating actions whose ``action.approval`` is ``skipped`` or
      absent, i.e. data changed without an approval. A ``denied`` action is not counted:
      the approval gate did its job. A layer that ran without mutating scores 0, so a gate
      per layer has a sample for every call in which that layer ran.

    ``detail`` names the actions. No span, no Score.
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
        ran = [ly for ly in c.LAYERS if instance.layers.get(ly)]
        out = []
        for layer in sorted({*by_layer, *ran}):
            acts = by_layer.get(layer, [])
            mutating = [a for a in acts if a.mutating is True]
            unapproved = [
                a for a in mutating if a.approval is None or a.approval == c.APPROVAL_SKIPPED
            ]
            if acts:
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
