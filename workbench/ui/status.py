"""What the header shows: the device the app runs on and the workspace. Pure functions."""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass
from typing import Any

from workbench.core.device import DeviceInfo, describe_device
from workbench.core.store import Store
from workbench.core.workspace import Workspace


@dataclass(frozen=True)
class AppStatus:
    device: DeviceInfo
    workspace: str
    schema_version: int
    counts: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["device_summary"] = self.device.summary()
        return data


def read_status(workspace: Workspace, store: Store, device: DeviceInfo | None = None) -> AppStatus:
    return AppStatus(
        device=device or describe_device(),
        workspace=str(workspace.root),
        schema_version=store.schema_version,
        counts=store.counts(),
    )


def header_html(status: AppStatus) -> str:
    device = html.escape(status.device.summary())
    where = html.escape(status.workspace)
    sets, facts = status.counts["knowledge_sets"], status.counts["facts"]
    runs = status.counts["runs"]
    return (
        '<div class="wb-header">'
        '<div class="wb-title">Knowledge Workbench</div>'
        f'<div class="wb-meta"><span class="wb-device" title="device">{device}</span>'
        f'<span class="wb-workspace" title="workspace folder">Workspace: {where}</span>'
        f'<span class="wb-counts">{sets} knowledge sets · {facts} facts · {runs} runs</span>'
        "</div></div>"
    )
