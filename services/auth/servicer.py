"""AuthService over gRPC: converts messages and delegates to the use cases."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from google.api import httpbody_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from gouache.contracts.auth.v1 import auth_pb2, auth_pb2_grpc
from gouache.runtime.audit import pseudonym
from gouache.runtime.context import current_principal
from gouache.runtime.errors import InvalidArgument
from services.auth.audit import AuditEvent, AuditLog
from services.auth.domain import (
    Accounts,
    ApiKeyRecord,
    Member,
    Projects,
    ProjectView,
)
from services.auth.domain.plans import PlanChange, Plans
from services.auth.keys import KeyRing
from services.auth.oauth2 import answer_token_request
from services.auth.oidc import OidcVerifier

# The response header that carries the HTTP status of an OAuth2 answer: the edge applies it
# and removes it (gouache.edge.oauth2.STATUS_HEADER, which services may not import).
STATUS_HEADER = "x-gouache-http-status"


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _api_key(record: ApiKeyRecord) -> auth_pb2.ApiKey:
    return auth_pb2.ApiKey(
        key_id=record.key_id,
        name=record.name,
        created_at=_timestamp(record.created_at),
        revoked=record.revoked,
    )


def _project(view: ProjectView) -> auth_pb2.Project:
    return auth_pb2.Project(
        project_id=view.project.project_id,
        name=view.project.name,
        created_by=view.project.created_by,
        created_at=_timestamp(view.project.created_at),
        role=view.role,
        personal=view.personal,
        plan=view.project.plan,
    )


def _member(member: Member) -> auth_pb2.ProjectMember:
    return auth_pb2.ProjectMember(
        user_id=member.user_id,
        email=member.email,
        role=member.role,
        added_at=_timestamp(member.added_at),
        added_by=member.added_by,
    )


def _audit_pb(event: AuditEvent) -> auth_pb2.AuditEvent:
    at = Timestamp()
    at.FromDatetime(event.at)
    return auth_pb2.AuditEvent(
        event_id=event.event_id,
        at=at,
        actor_id=event.actor_id,
        action=event.action,
        target=event.target,
        subject_id=event.subject_id,
        service=event.service,
        detail=event.detail,
    )


def _audit_event(index: int, item: auth_pb2.AuditEvent, service: str) -> AuditEvent:
    """A reported event, checked: an id and an action are needed, the time defaults to now."""
    where = f"events[{index}]"
    if not 1 <= len(item.event_id) <= 64:
        raise InvalidArgument(
            f"{where}.event_id must be 1-64 characters", field=f"{where}.event_id"
        )
    if not 1 <= len(item.action) <= 64:
        raise InvalidArgument(f"{where}.action must be 1-64 characters", field=f"{where}.action")
    return AuditEvent(
        event_id=item.event_id,
        at=item.at.ToDatetime(UTC) if item.HasField("at") else datetime.now(UTC),
        actor_id=item.actor_id,
        action=item.action,
        target=item.target,
        subject_id=item.subject_id,
        service=service,
        detail=item.detail,
    )


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    """One method per RPC; rules live in Accounts, Projects and KeyRing."""

    def __init__(
        self,
        accounts: Accounts,
        keys: KeyRing,
        audit: AuditLog,
        projects: Projects,
        plans: Plans,
    ) -> None:
        self._accounts = accounts
        self._keys = keys
        self._audit = audit
        self._projects = projects
        self._plans = plans

    async def IssueToken(
        self, request: auth_pb2.IssueTokenRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.IssueTokenResponse:
        issued = await self._accounts.issue_token(
            request.grant_type,
            api_key=request.api_key,
            email=request.email,
            password=request.password,
            scopes=[*request.scopes, request.scope],
            project=request.project,
        )
        return auth_pb2.IssueTokenResponse(
            access_token=issued.access_token,
            token_type="Bearer",
            expires_in=issued.expires_in,
            scope=" ".join(issued.scopes),
            project_id=issued.project_id,
            project_role=issued.project_role,
            plan=issued.plan,
        )

    async def GetJwks(
        self, request: auth_pb2.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.GetJwksResponse:
        return auth_pb2.GetJwksResponse(
            keys=[auth_pb2.Jwk(**jwk) for jwk in await self._keys.jwks()]
        )

    async def WhoAmI(
        self, request: auth_pb2.WhoAmIRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.WhoAmIResponse:
        principal = current_principal()
        return auth_pb2.WhoAmIResponse(
            user_id=principal.user_id,
            email=principal.email,
            role=principal.role,
            scopes=sorted(principal.scopes),
            project_id=principal.project_id,
            project_role=principal.project_role,
            plan=principal.plan,
        )

    async def CreateUser(
        self, request: auth_pb2.CreateUserRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.CreateUserResponse:
        user = await self._accounts.create_user(
            email=request.email,
            password=request.password,
            name=request.name,
            role=request.role,
            plan=request.plan,
        )
        await self._audit.record(
            current_principal(),
            "user.created",
            target=f"user:{user.user_id}",
            subject_id=user.user_id,
            detail=f"role={user.role} plan={user.plan}",
        )
        return auth_pb2.CreateUserResponse(
            user_id=user.user_id, email=user.email, role=user.role, plan=user.plan
        )

    async def CreateApiKey(
        self, request: auth_pb2.CreateApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.CreateApiKeyResponse:
        created = await self._accounts.create_api_key(
            current_principal(), name=request.name, user_id=request.user_id
        )
        await self._audit.record(
            current_principal(),
            "api_key.created",
            target=f"api_key:{created.record.key_id}",
            subject_id=created.record.user_id,
        )
        return auth_pb2.CreateApiKeyResponse(
            key_id=created.record.key_id,
            api_key=created.api_key,
            name=created.record.name,
            created_at=_timestamp(created.record.created_at),
        )

    async def ListApiKeys(
        self, request: auth_pb2.ListApiKeysRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.ListApiKeysResponse:
        records = await self._accounts.list_api_keys(current_principal())
        return auth_pb2.ListApiKeysResponse(keys=[_api_key(record) for record in records])

    async def RevokeApiKey(
        self, request: auth_pb2.RevokeApiKeyRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RevokeApiKeyResponse:
        await self._accounts.revoke_api_key(current_principal(), request.key_id)
        await self._audit.record(
            current_principal(), "api_key.revoked", target=f"api_key:{request.key_id.strip()}"
        )
        return auth_pb2.RevokeApiKeyResponse()

    async def DeleteAccount(
        self, request: auth_pb2.DeleteAccountRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.DeleteAccountResponse:
        result = await self._accounts.delete_account(request.user_id)
        user_id = request.user_id.strip()
        await self._audit.pseudonymise(user_id)
        if result.deleted:
            await self._audit.record(
                current_principal(),
                "account.deleted",
                target=f"user:{pseudonym(user_id)}",
                subject_id=pseudonym(user_id),
                detail=f"api_keys={result.api_keys} project_memberships={result.memberships}",
            )
        return auth_pb2.DeleteAccountResponse(
            deleted=result.deleted,
            api_keys_deleted=result.api_keys,
            project_memberships_deleted=result.memberships,
        )

    async def ListAuditEvents(
        self, request: auth_pb2.ListAuditEventsRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.ListAuditEventsResponse:
        since = request.since.ToDatetime(UTC) if request.HasField("since") else None
        events, token = await self._audit.list(
            since=since,
            actor_id=request.actor_id.strip(),
            action=request.action.strip(),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return auth_pb2.ListAuditEventsResponse(
            events=[_audit_pb(event) for event in events], next_page_token=token
        )

    async def RecordAuditEvents(
        self, request: auth_pb2.RecordAuditEventsRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RecordAuditEventsResponse:
        service = current_principal().user_id
        events = [_audit_event(index, item, service) for index, item in enumerate(request.events)]
        return auth_pb2.RecordAuditEventsResponse(recorded=await self._audit.append(events))

    async def CreateProject(
        self, request: auth_pb2.CreateProjectRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.CreateProjectResponse:
        actor = current_principal()
        view = await self._projects.create(actor, request.name)
        project_id = view.project.project_id
        await self._audit.record(
            actor, "project.created", target=f"project:{project_id}", subject_id=actor.user_id
        )
        return auth_pb2.CreateProjectResponse(project=_project(view))

    async def ListProjects(
        self, request: auth_pb2.ListProjectsRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.ListProjectsResponse:
        views, token = await self._projects.list(
            current_principal(),
            all_projects=request.all,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return auth_pb2.ListProjectsResponse(
            projects=[_project(view) for view in views], next_page_token=token
        )

    async def GetProject(
        self, request: auth_pb2.GetProjectRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.GetProjectResponse:
        detail = await self._projects.get(current_principal(), request.project_id)
        return auth_pb2.GetProjectResponse(
            project=_project(detail.view), members=[_member(m) for m in detail.members]
        )

    async def PutProjectMember(
        self, request: auth_pb2.PutProjectMemberRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.PutProjectMemberResponse:
        actor = current_principal()
        change = await self._projects.put_member(
            actor, request.project_id, request.user_id, request.role
        )
        member = change.member
        if change.previous_role != member.role:
            added = not change.previous_role
            await self._audit.record(
                actor,
                "project.member_added" if added else "project.member_role_changed",
                target=f"project:{member.project_id}",
                subject_id=member.user_id,
                detail=f"role={member.role}"
                if added
                else f"role={change.previous_role}->{member.role}",
            )
        return auth_pb2.PutProjectMemberResponse(member=_member(member))

    async def RemoveProjectMember(
        self, request: auth_pb2.RemoveProjectMemberRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.RemoveProjectMemberResponse:
        actor = current_principal()
        await self._projects.remove_member(actor, request.project_id, request.user_id)
        await self._audit.record(
            actor,
            "project.member_removed",
            target=f"project:{request.project_id.strip()}",
            subject_id=request.user_id.strip(),
        )
        return auth_pb2.RemoveProjectMemberResponse()

    async def SetUserPlan(
        self, request: auth_pb2.SetUserPlanRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.SetUserPlanResponse:
        actor = current_principal()
        change = await self._plans.set_user_plan(actor, request.user_id, request.plan)
        await self._audit_plan(change)
        return auth_pb2.SetUserPlanResponse(
            user_id=change.subject, plan=change.plan, previous_plan=change.previous_plan
        )

    async def SetProjectPlan(
        self, request: auth_pb2.SetProjectPlanRequest, context: grpc.aio.ServicerContext
    ) -> auth_pb2.SetProjectPlanResponse:
        actor = current_principal()
        change = await self._plans.set_project_plan(actor, request.project_id, request.plan)
        await self._audit_plan(change)
        return auth_pb2.SetProjectPlanResponse(
            project_id=change.subject, plan=change.plan, previous_plan=change.previous_plan
        )

    async def _audit_plan(self, change: PlanChange) -> None:
        """`plan.changed` for a change (setting the plan a subject already has records none)."""
        if change.changed:
            await self._audit.record(
                current_principal(),
                "plan.changed",
                target=f"{change.kind}:{change.subject}",
                subject_id=change.subject if change.kind == "user" else "",
                detail=f"plan={change.previous_plan}->{change.plan}",
            )


class OAuth2Servicer(auth_pb2_grpc.OAuth2ServiceServicer):
    """The RFC 6749 token endpoint: the edge hands it the raw form body (services.auth.oauth2)."""

    def __init__(self, accounts: Accounts, oidc: OidcVerifier | None = None) -> None:
        self._accounts = accounts
        self._oidc = oidc

    async def IssueOAuth2Token(
        self, request: auth_pb2.IssueOAuth2TokenRequest, context: grpc.aio.ServicerContext
    ) -> httpbody_pb2.HttpBody:
        authorization = [
            str(value)
            for key, value in context.invocation_metadata() or ()
            if key.lower() == "authorization"
        ]
        answer = await answer_token_request(
            self._accounts,
            content_type=request.body.content_type,
            body=request.body.data,
            authorization=authorization,
            oidc=self._oidc,
        )
        await context.send_initial_metadata(((STATUS_HEADER, str(answer.status)), *answer.headers))
        return httpbody_pb2.HttpBody(content_type="application/json", data=answer.body)
