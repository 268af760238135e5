"""Where everything of an installation is: every folder and every file name, once.

Pure (no I/O). Folders are the fields of `Paths` (stored in plan.json); the files
in them are properties, so a new file never changes a stored Plan. Nothing else in
coursehub spells a data-folder file name: it asks `Plan.paths` (or `layout_paths`
when there is no Plan yet). Imports nothing of coursehub.
"""

from __future__ import annotations

from dataclasses import dataclass

# Where an installation's folders are. LOCAL: everything under one data folder
# (the local target). SYSTEM: the POC's places under a root prefix ('/' on a
# host), the same paths on the host and inside containers (bind mounts).
LOCAL, SYSTEM = "local", "system"
LAYOUTS = (LOCAL, SYSTEM)

# In a course's own folder (the grader's): nbgrader's gradebook and coursehub's
# record of when each submission was first seen.
GRADEBOOK = "gradebook.db"
RECEIPTS = "submission_receipts.sqlite"
# The escape hatch: *.py files here are loaded after coursehub's hub configuration.
HUB_CONFIG_D = "jupyterhub_config.d"


def gradebook_file(course_root: str) -> str:
    return f"{course_root}/{GRADEBOOK}"


def gradebook_url(course_root: str) -> str:
    """The gradebook as nbgrader's `db_url` names it."""
    return f"sqlite:///{gradebook_file(course_root)}"


def receipts_file(course_root: str) -> str:
    return f"{course_root}/{RECEIPTS}"


@dataclass(frozen=True)
class Paths:
    data_dir: str
    secrets: str
    state: str
    logs: str
    run: str
    etc: str
    homes: str
    graders: str
    exchange: str
    jupyter_config: str  # JUPYTER_CONFIG_PATH for every server: nbgrader layer 1
    passwd: str
    group: str

    # -- the state folder (0700, coursehub only)
    @property
    def plan_file(self) -> str:
        return f"{self.state}/plan.json"

    @property
    def ids_file(self) -> str:
        """The uids and gids handed out so far: they never change once given."""
        return f"{self.state}/ids.json"

    @property
    def runtime_file(self) -> str:
        """The local target's runtime facts: the servers' environment, the site file."""
        return f"{self.state}/runtime.json"

    @property
    def hub_db_url(self) -> str:
        return f"sqlite:///{self.state}/jupyterhub.sqlite"

    @property
    def local_hub_config(self) -> str:
        """The local target's generated jupyterhub_config.py."""
        return f"{self.state}/jupyterhub_config.py"

    @property
    def system_hub_config(self) -> str:
        """The Docker host's jupyterhub_config.py (in /etc/jupyterhub, as in the POC)."""
        return f"{self.etc}/jupyterhub_config.py"

    @property
    def passwords_dbm(self) -> str:
        """The first-use authenticator's password database (bcrypt hashes by name)."""
        return f"{self.state}/passwords.dbm"

    @property
    def password_links(self) -> str:
        return f"{self.state}/password-links.sqlite"

    @property
    def lti_nonces(self) -> str:
        return f"{self.state}/lti-nonces.sqlite"

    @property
    def lti_creations(self) -> str:
        return f"{self.state}/lti-course-creations.sqlite"

    @property
    def lti_outcomes(self) -> str:
        return f"{self.state}/lti-outcomes.sqlite"

    @property
    def lti_people(self) -> str:
        """Whose each launch-made hub name is."""
        return f"{self.state}/lti-people.json"

    @property
    def gradebook_seen(self) -> str:
        """Which students each gradebook had when coursehub last synced it."""
        return f"{self.state}/gradebook-seen.json"

    # -- the run folder (0700): pids, locks, the supervisor's state
    @property
    def hub_pid(self) -> str:
        return f"{self.run}/hub.pid"

    @property
    def supervisor_state(self) -> str:
        return f"{self.run}/supervisor.json"

    @property
    def supervisor_lock(self) -> str:
        return f"{self.run}/supervisor.lock"

    @property
    def apply_lock(self) -> str:
        return f"{self.run}/apply.lock"

    # -- logs (0700)
    def log(self, process: str) -> str:
        """The log of one of coursehub's processes ('hub', 'proxy', 'grader-COURSE'...)."""
        return f"{self.logs}/{process}.log"

    @property
    def server_logs(self) -> str:
        return f"{self.logs}/servers"

    def server_log(self, person: str) -> str:
        return f"{self.server_logs}/{person}.log"

    # -- configuration
    @property
    def nbgrader_layer1(self) -> str:
        return f"{self.jupyter_config}/nbgrader_config.py"

    @property
    def hub_config_d(self) -> str:
        """The escape hatch: the operator's *.py hub configuration, loaded after coursehub's
        (root only: its files run in the hub)."""
        return f"{self.etc}/{HUB_CONFIG_D}"

    def nss_passwd(self, account: str) -> str:
        return f"{self.etc}/nss/{account}.passwd"

    def nss_group(self, account: str) -> str:
        return f"{self.etc}/nss/{account}.group"


def layout_paths(data_dir: str, layout: str = LOCAL) -> Paths:
    """Every place of an installation, for a data folder (LOCAL) or a root prefix (SYSTEM)."""
    if layout == SYSTEM:
        r = data_dir.rstrip("/")  # "/" becomes "", so paths read /srv/..., /etc/...
        runtime = f"{r}/srv/jupyterhub"
        return Paths(
            data_dir=runtime,
            secrets=f"{runtime}/secrets",
            state=f"{runtime}/state",
            logs=f"{r}/var/log/coursehub",
            run=f"{runtime}/run",
            etc=f"{r}/etc/jupyterhub",
            # not /home/{name}: a person named like a host account must never get its home
            homes=f"{runtime}/homes",
            graders=f"{r}/home",
            exchange=f"{r}/srv/nbgrader/exchange",
            jupyter_config=f"{r}/etc/jupyterhub",
            passwd=f"{r}/etc/jupyterhub/passwd",
            group=f"{r}/etc/jupyterhub/group",
        )
    d = data_dir.rstrip("/")
    return Paths(
        data_dir=d,
        secrets=f"{d}/secrets",
        state=f"{d}/state",
        logs=f"{d}/logs",
        run=f"{d}/run",
        etc=f"{d}/etc",
        homes=f"{d}/homes",
        graders=f"{d}/graders",
        exchange=f"{d}/exchange",
        jupyter_config=f"{d}/etc/jupyter",
        passwd=f"{d}/etc/passwd",
        group=f"{d}/etc/group",
    )
