"""Identity operations: undo a merge."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.deps import ConnDep, MarketerDep
from cloud.api.routes.customers_deps import RulesDep
from cloud.api.schemas.crm import UnmergePublic
from cloud.api.schemas.limits import RowId
from cloud.crm.identity.unmerge import unmerge

router = APIRouter(prefix="/v1/identities", tags=["customers"])


@router.post("/merges/{merge_id}/undo", summary="Unmerge: restore the absorbed profile")
def undo_merge(merge_id: RowId, conn: ConnDep, who: MarketerDep, rules: RulesDep) -> UnmergePublic:
    """Restore both profiles; the identifiers that linked them stop linking."""
    survivor, restored = unmerge(conn, merge_id=merge_id, actor=who.subject, rules=rules)
    return UnmergePublic(survivor_id=survivor, restored_id=restored)
