"""The Plan, as every coursehub class inside JupyterHub reads it (one mixin).

Authenticators and spawners take `plan_file` from the generated configuration and
read the Plan again whenever the file changed, so a roster change applies at once;
`host` is the target the hub runs on (coursehub.hosting). Imports no target.
"""

from __future__ import annotations

from traitlets import HasTraits, Unicode

from ..hosting import Host, host_for
from ..plan import Plan, load_plan


class PlanReader(HasTraits):
    plan_file = Unicode(
        help="""The Plan written by coursehub (in the installation's state folder). It is read
        again whenever it changes, so people and courses added while the hub runs count
        at once.""",
    ).tag(config=True)

    @property
    def plan(self) -> Plan:
        return load_plan(self.plan_file)

    @property
    def host(self) -> Host:
        """The installation's target: what the hub asks to apply changes or run as a grader."""
        return host_for(self.plan)
