"""nbgrader's Execute step as coursehub runs it: a notebook stopped by a limit is graded.

nbgrader loses a submission whose kernel dies (nothing reaches the gradebook and
the formgrader keeps asking for autograding). Here the cell that was running and
every code cell after it get an error output that says which limit was hit, so
SaveAutoGrades scores them zero and the formgrader shows the reason in the
submission; the other cells keep what they earned.
"""

from __future__ import annotations

from typing import Any

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Integer, default

from .provisioner import GradingProvisioner, SandboxUnavailable

LIMIT_ENAME = "GradingLimit"
# What coursehub stopped in the notebooks graded in this process since it was last read,
# from the grader side's own knowledge (a student can print anything, and raise an error
# named like ours): coursehub.grading.parallel reports these, never the notebook's text.
STOPPED: list[str] = []


def limit_output(reason: str) -> NotebookNode:
    return NotebookNode(
        output_type="error",
        ename=LIMIT_ENAME,
        evalue=reason,
        traceback=[f"\x1b[0;31m{LIMIT_ENAME}\x1b[0m: coursehub stopped grading here: {reason}"],
    )


class LimitedExecute(Execute):
    """Execute, with the sandbox's stop reasons written into the notebook."""

    max_output_bytes = Integer(
        64 << 20,
        help="Bytes of output a notebook may send while it is graded (all cells together); "
        "past them the notebook is stopped and what it sends after is dropped.",
    ).tag(config=True)

    @default("error_on_timeout")
    def _error_on_timeout_default(self) -> dict[str, Any]:
        reason = (
            f"this cell ran longer than {self.timeout} s, the time limit of one cell while "
            "grading, and was interrupted"
        )
        return {"ename": "CellTimeoutError", "evalue": reason, "traceback": [reason]}

    @default("shutdown_kernel")
    def _shutdown_kernel_default(self) -> str:
        return "immediate"  # a grading kernel has nothing to save: stop it at once

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None):
        self._stopped: str | None = None
        self._output_bytes = 0
        try:
            return super().preprocess(nb, resources, km)
        except SandboxUnavailable:
            raise  # the machine's fault, not the student's: nothing is graded, nbgrader says why
        except (DeadKernelError, RuntimeError) as err:
            # the kernel never answered: the submission could not start in the sandbox
            reason = self._reason(err)
            STOPPED.append(reason)
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs = [limit_output(reason)]
            self.log.warning("Not run: %s", reason)
            return nb, resources

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int):
        if self._stopped is not None:
            if cell.cell_type == "code":
                cell.outputs = [limit_output(self._stopped)]
                cell.execution_count = None
            return cell, resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except DeadKernelError as err:
            self._stopped = self._stopped or self._reason(err)
        except CellTimeoutError:
            # interrupted, and still busy: the notebook ignores interrupts; stop it now
            self._stopped = (
                f"this cell ran longer than {self.timeout} s, the time limit of one cell while "
                "grading, and did not stop when interrupted"
            )
            prov = self._provisioner()
            if prov is not None:
                prov.kill_now()
        self.log.warning("Stopped at cell %d: %s", index, self._stopped)
        STOPPED.append(self._stopped)
        cell.outputs.append(limit_output(self._stopped))
        return cell, resources

    async def _async_handle_timeout(self, timeout: int, cell: NotebookNode | None = None):
        # the grader side's own knowledge that a cell ran out of time (the kernel could
        # raise an error named CellTimeoutError itself)
        STOPPED.append(self.error_on_timeout.get("evalue") or f"a cell ran longer than {timeout} s")
        return await super()._async_handle_timeout(timeout, cell)

    def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int):
        """Keep a notebook's outputs within max_output_bytes: the grader holds them all."""
        content = msg.get("content", {})
        self._output_bytes += sum(len(str(v)) for v in content.values())
        if self._output_bytes > self.max_output_bytes:
            if self._stopped is None:
                self._stopped = (
                    f"the notebook printed more than {self.max_output_bytes >> 20} MiB, the "
                    "output limit while grading, and was stopped"
                )
                STOPPED.append(self._stopped)
                prov = self._provisioner()
                if prov is not None:
                    prov.kill_now()
            return None
        return super().output(outs, msg, display_id, cell_index)

    def on_cell_executed(self, **kwargs: Any) -> None:
        super().on_cell_executed(**kwargs)
        provisioner = self._provisioner()
        if provisioner is None:
            return
        for output in kwargs["cell"].outputs:
            note = _limit_note(output, provisioner)
            if note and note not in output.get("traceback", []):
                output.setdefault("traceback", []).append(note)
                STOPPED.append(note.removeprefix("coursehub: "))

    def _provisioner(self) -> GradingProvisioner | None:
        prov = getattr(self.km, "provisioner", None)
        return prov if isinstance(prov, GradingProvisioner) and prov.sandboxed else None

    def _reason(self, err: Exception) -> str:
        prov = self._provisioner()
        if prov is not None and prov.stop_reason:
            return prov.stop_reason
        if prov is not None:
            return f"the kernel stopped while grading ({prov.exit_text()})"
        return f"the kernel stopped while grading ({err})"


def _limit_note(output: NotebookNode, prov: GradingProvisioner) -> str | None:
    """A line that names the grading limit behind an error, when one plainly is."""
    if output.get("output_type") != "error":
        return None
    ename, evalue = output.get("ename", ""), str(output.get("evalue", ""))
    if ename == "MemoryError":
        return f"coursehub: while grading, a process may use at most {prov.memory_limit} of memory"
    if ename == "BlockingIOError" or "Resource temporarily unavailable" in evalue:
        return f"coursehub: while grading, at most {prov.process_limit} processes may run"
    if "No space left on device" in evalue or "File too large" in evalue:
        return f"coursehub: while grading, a notebook may write at most {prov.disk_limit}"
    return None
