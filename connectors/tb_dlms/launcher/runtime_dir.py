"""The gateway's own directory under the work dir, so nothing it writes lands in the config dir.

The gateway (3.8.5) takes its directory from the path of ``tb_gateway.json`` and writes there at run
time: ``connected_devices.json`` on every device change, the connector file when it has no ``"id"``
(it adds one; when that write fails -- the service user cannot write ``/etc``, ``ProtectSystem=strict``
-- it loads no connector at all and logs only ``Error on loading connector: PermissionError(13, ...)``),
``persistent_keys.json``, provisioned credentials and remote-configuration updates. The operator's
config dir may be read-only, so the launcher builds ``<work dir>/gateway-config/`` and starts the
gateway on that:

* ``tb_gateway.json``: generated from ``tb_gateway.yaml`` (or a copy of the user's ``tb_gateway.json``);
* ``logs.json``: the user's, else the gateway's default;
* each connector file: a copy, with a stable ``"id"`` added when the user's has none (uuid5 of the
  connector name, as ``setup_gateway.sh`` and ``tb-dlms-fleet`` write it: the same on every start
  and host, nothing stored);
* every other entry of the config dir: a symlink, so certificates or filter files named by a
  relative path still resolve.

The copies are refreshed before each of the gateway's connector-file checks
(``checkConnectorsConfigurationInSeconds``), so editing the user's file still reloads the connectors.

A copy is replaced only when the user's file changed since it was last copied (its content hash is
kept in ``.tb-dlms-sources.json`` beside the copies, across restarts): a configuration applied from
ThingsBoard (remote configuration writes the copy, since that is the file the gateway loads) then
survives a restart, and the later of the two edits wins.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path

log = logging.getLogger("tb_dlms.launcher")

NAME = "gateway-config"
#: Written by the gateway itself (constants.py): never linked to the config dir's copy.
GATEWAY_STATE_FILES = frozenset({"connected_devices.json", "persistent_keys.json", ".credentials"})
_MARK = "_tb_dlms_runtime_refresh"
#: Content hash of each user's connector file as last copied (relative path -> sha256 hex).
SOURCES_FILE = ".tb-dlms-sources.json"


def stable_connector_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tb-dlms:{name}"))


def _atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    # 0600: connector files may hold meter passwords; the gateway must never read a half-written copy.
    tmp = path.with_name(f".{path.name}.tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


class RuntimeDir:
    def __init__(self, config_dir: Path, work_dir: Path) -> None:
        self.config_dir = Path(config_dir)
        self.path = Path(work_dir) / NAME
        #: connector file (relative) -> connector name, for the ids of files without one
        self.connectors: dict[str, str] = {}
        self._seen: dict[str, tuple] = {}
        self._copied: dict[str, str] = self._load_sources()

    def _load_sources(self) -> dict[str, str]:
        try:
            data = json.loads((self.path / SOURCES_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _save_sources(self) -> None:
        _atomic_write(self.path / SOURCES_FILE, json.dumps(self._copied, indent=1, sort_keys=True).encode())

    @property
    def gateway_file(self) -> Path:
        return self.path / "tb_gateway.json"

    def build(self, main_config_json: bytes, logs_source: Path) -> Path:
        self.path.mkdir(mode=0o750, parents=True, exist_ok=True)
        _atomic_write(self.gateway_file, main_config_json)
        shutil.copyfile(logs_source, self.path / "logs.json")
        self.refresh_connectors()
        self._link_the_rest()
        return self.gateway_file

    def set_connectors(self, main_config: dict) -> None:
        self.connectors = {str(c["configuration"]): str(c.get("name") or "")
                           for c in main_config.get("connectors") or []
                           if isinstance(c, dict) and c.get("configuration")}

    def refresh_connectors(self) -> bool:
        """Copy the connector files that changed since the last call; True if any did."""
        changed = False
        for rel, name in self.connectors.items():
            source, target = self.config_dir / rel, self.path / rel
            try:
                st = source.stat()
            except OSError as exc:
                log.error("Connector %r: cannot read %s: %s", name, source, exc)
                continue
            fingerprint = (st.st_mtime_ns, st.st_size, st.st_ino)
            if self._seen.get(rel) == fingerprint and target.exists():
                continue
            data = source.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if self._copied.get(rel) == digest and target.exists():
                # Unchanged since copied: the copy stays, with any change applied from ThingsBoard.
                self._seen[rel] = fingerprint
                continue
            if rel in self._copied and target.exists():
                log.info("Connector %r: %s was edited: it replaces %s", name, source, target)
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = None  # passed on as is: the gateway reports what is wrong with it
            if isinstance(parsed, dict) and parsed.get("id") is None:
                parsed["id"] = stable_connector_id(name)
                data = json.dumps(parsed, indent=2).encode()
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()
            if not target.exists() or target.read_bytes() != data:
                _atomic_write(target, data)
                changed = True
            self._seen[rel] = fingerprint
            self._copied[rel] = digest
            self._save_sources()
        return changed

    def _link_the_rest(self) -> None:
        own = {NAME, "tb_gateway.yaml", "tb_gateway.json", "logs.json", *GATEWAY_STATE_FILES,
               *(Path(rel).parts[0] for rel in self.connectors)}
        wanted = {entry.name for entry in self.config_dir.iterdir()
                  if entry.name not in own and not entry.name.startswith(".")}
        for entry in self.path.iterdir():
            if entry.is_symlink() and entry.name not in wanted:
                entry.unlink()  # gone from the config dir since the last start
        for name in wanted:
            link = self.path / name
            if link.is_symlink():
                link.unlink()
            elif link.exists():
                continue  # the gateway's own file of that name
            link.symlink_to(self.config_dir / name)


def refresh_before_connector_checks(service_cls, runtime: RuntimeDir) -> None:
    """Let the gateway's mtime check of the copies see edits of the user's files."""
    original = service_cls.check_connector_configuration_updates
    original = getattr(original, _MARK, original)

    def check_connector_configuration_updates(self):
        try:
            if runtime.refresh_connectors():
                log.info("Connector file changed in %s: copied to %s", runtime.config_dir, runtime.path)
        except OSError as exc:
            log.error("Cannot refresh the connector files from %s: %s", runtime.config_dir, exc)
        return original(self)

    setattr(check_connector_configuration_updates, _MARK, original)
    service_cls.check_connector_configuration_updates = check_connector_configuration_updates
