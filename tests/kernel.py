"""Run code in a person's kernel through their server's REST and websocket APIs,
as JupyterLab does, through the proxy."""

from __future__ import annotations

import json
import time
import uuid

import websocket

from hubclient import Person


class Kernel:
    def __init__(self, person: Person):
        self.person = person
        r = person.server("POST", "api/kernels", json={"name": "python3"})
        assert r.status_code == 201, (r.status_code, r.text[:300])
        self.id = r.json()["id"]
        self.session = uuid.uuid4().hex
        base = person.url(f"user/{person.name}/api/kernels/{self.id}/channels")
        ws_url = base.replace("http://", "ws://", 1) + f"?session_id={self.session}"
        cookies = "; ".join(f"{c.name}={c.value}" for c in person.s.cookies)
        self.ws = websocket.create_connection(ws_url, header=[f"Cookie: {cookies}"], timeout=60)

    def run(self, code: str, timeout: float = 60) -> str:
        """Execute `code`; return its stdout. Raises with the traceback on an error."""
        return self.result(self.execute(code), timeout)

    def execute(self, code: str) -> str:
        """Start executing `code` without waiting; returns the request's id."""
        msg_id = uuid.uuid4().hex
        self.ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": self.person.name,
                        "session": self.session,
                        "msg_type": "execute_request",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": code, "silent": False, "store_history": False},
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        return msg_id

    def result(self, msg_id: str, timeout: float = 60) -> str:
        """Wait for the request `msg_id` to finish; its stdout, or raise with its traceback."""
        out: list[str] = []
        error = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                error = "\n".join(msg["content"]["traceback"])
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                break
        else:
            raise TimeoutError(f"no answer from the kernel of {self.person.name}")
        if error:
            raise RuntimeError(error)
        return "".join(out)

    def close(self) -> None:
        self.ws.close()
        self.person.server("DELETE", f"api/kernels/{self.id}")
