"""The emulated ARM resource provider ``Microsoft.MachineLearning/webServices`` (API-NOTES 1).

Operations: PUT, PATCH (recursive merge), GET (optionally ``?region=``), DELETE, listKeys,
list by resource group / subscription (paged with an absolute ``nextLink``),
CreateRegionalBlob, the provider's operations list, and the regional ``operationsStatus``
/ ``operationresults`` documents of long-running operations.

It answers as the live service did in the recorded sessions of API-NOTES 1.3a, where those
and the swagger disagree: PUT and PATCH answer a small body (never the definition),
``location`` reads back as the region's display name, a missing service's 404 names
``WebServiceNotFound``, a DELETE of a service that does not exist is 204 without
operation headers, a PATCH drops empty members, and a PUT whose graph is in a blob
(``payloadsInBlobStorage`` + ``payloadsLocation``) has the blob read and the graph inline.

With ``require_create_secrets`` (``Emulator(strict_arm_create=True)``), a PUT that
*creates* a service must carry what a GET leaves out and the real service needs at
creation: ``properties.storageAccount`` with its ``name`` and ``key``, and
``properties.commitmentPlan.id`` (an ARM id of a ``commitmentPlans`` resource). API-NOTES
4.1 says an exported (GET) definition must have both added back before it is created
again; what the live service answers without them was not recorded, so the refusal (400
``BadRequest`` with a ``MissingStorageAccountKey``, ``MissingCommitmentPlan`` or
``InvalidCommitmentPlanId`` detail, in the ARM error shape of API-NOTES 1.1) is a GUESS.
It is off by default: the emulator's users have created services from fetched definitions
without them. A PUT that updates a service is not checked (the plan is immutable).
"""

from __future__ import annotations

import copy
import logging
import urllib.parse
from collections.abc import Mapping
from typing import Any

from amlretrain.emulator._armpayloads import inline_payloads, read_payloads
from amlretrain.emulator._armviews import (
    ci_pop,
    drop_empty_members,
    list_view,
    merge,
    service_view,
    write_view,
)
from amlretrain.emulator._server import (
    Reply,
    Request,
    Response,
    Router,
    arm_error,
    checked_arm_request,
    json_response,
)
from amlretrain.emulator.faults import Faults
from amlretrain.emulator.state import (
    ArmService,
    Operation,
    State,
    ci_get,
    display_region,
    new_id,
    new_key,
    normalize_region,
    now_iso,
)

__all__ = ["API_VERSIONS", "RESOURCE_TYPE", "ArmApi", "list_view", "merge", "runtime_base"]
__all__ += ["service_view"]

log = logging.getLogger(__name__)

API_VERSIONS = ("2017-01-01", "2016-05-01-preview")
RESOURCE_TYPE = "Microsoft.MachineLearning/webServices"
_PROVIDER = "/providers/Microsoft.MachineLearning"
_WS = "/subscriptions/{sub}/resourceGroups/{rg}" + _PROVIDER + "/webServices/{name}"
_OPERATIONS = [
    ("webServices/read", "Read any Machine Learning web service"),
    ("webServices/write", "Create or update any Machine Learning web service"),
    ("webServices/delete", "Delete any Machine Learning web service"),
    ("webServices/listkeys/read", "List the keys of any Machine Learning web service"),
    ("webServices/CreateRegionalBlob/action", "Create regional properties of a web service"),
]


class ArmApi:
    """The ARM web-services provider on the emulator's server.

    Args:
        state: the shared state.
        faults: the fault rules (``lro_fail``, ``lro_hang``, ``lro_slow`` and ``stale`` are
            consumed here).
        arm_token: the only bearer token accepted.
        require_create_secrets: refuse a PUT creating a service without the storage
            account key and the commitment plan id (see the module docstring).
    """

    def __init__(
        self, *, state: State, faults: Faults, arm_token: str, require_create_secrets: bool = False
    ) -> None:
        self.state = state
        self.faults = faults
        self._token = arm_token
        self.require_create_secrets = require_create_secrets

    def register(self, router: Router) -> None:
        """Add the ARM routes (ARM paths are case-insensitive)."""
        add = router.add
        add("GET", _PROVIDER + "/operations", "arm.operations", self.operations, ignore_case=True)
        subs = "/subscriptions/{sub}"
        add("GET", subs + _PROVIDER + "/webServices", "arm.list", self.list_sub, ignore_case=True)
        rg_list = subs + "/resourceGroups/{rg}" + _PROVIDER + "/webServices"
        add("GET", rg_list, "arm.list", self.list_rg, ignore_case=True)
        add("GET", _WS, "arm.get", self.get, ignore_case=True)
        add("PUT", _WS, "arm.put", self.put, ignore_case=True)
        add("PATCH", _WS, "arm.patch", self.patch, ignore_case=True)
        add("DELETE", _WS, "arm.delete", self.delete, ignore_case=True)
        add("GET", _WS + "/listKeys", "arm.listkeys", self.list_keys, ignore_case=True)
        add("POST", _WS + "/CreateRegionalBlob", "arm.regional", self.regional, ignore_case=True)
        loc = subs + _PROVIDER + "/locations/{loc}"
        add(
            "GET", loc + "/operationsStatus/{op}", "arm.operation", self.op_status, ignore_case=True
        )
        add(
            "GET", loc + "/operationresults/{op}", "arm.operation", self.op_result, ignore_case=True
        )

    # -- shared checks -----------------------------------------------------------------

    def _check(self, req: Request) -> str:
        return checked_arm_request(req, self._token, API_VERSIONS)

    @staticmethod
    def _bad_request(message: str) -> Response:
        return arm_error(400, "BadRequest", message)

    @staticmethod
    def _not_found(req: Request) -> Response:
        # The live 404 of a missing web service (API-NOTES 1.3a).
        return arm_error(
            404,
            "NotFound",
            "The specified resource was not found.",
            details=[
                {
                    "code": "WebServiceNotFound",
                    "message": (
                        "No Web Service could be found with the provided name: "
                        f"{req.params['name']}."
                    ),
                }
            ],
        )

    @staticmethod
    def _key(req: Request) -> tuple[str, str, str]:
        return (req.params["sub"].lower(), req.params["rg"].lower(), req.params["name"].lower())

    def _find(self, req: Request) -> ArmService | None:
        return self.state.arm.get(self._key(req))

    def _lro_headers(
        self, req: Request, op: Operation, *, location: bool = False
    ) -> dict[str, str]:
        base = f"{req.base_url}/subscriptions/{op.subscription_id}{_PROVIDER}/locations/{op.region}"
        query = "?api-version=" + urllib.parse.quote(op.api_version)
        headers = {
            "Azure-AsyncOperation": f"{base}/operationsStatus/{op.id}{query}",
            "Azure-AsyncOperationPercentComplete": "0",
        }
        if location:
            headers["Location"] = f"{base}/operationresults/{op.id}{query}"
        return headers

    def _lro_fault(self, req: Request) -> tuple[str | None, bool, float | None]:
        """``(fail message, hang, delay)`` for the operation this request starts (faults
        taken; ``delay`` None = the state's ``lro_delay``, else an ``lro_slow``'s)."""
        slow = self.faults.take_one([req.route], "lro_slow")
        delay = slow.seconds if slow is not None else None
        if self.faults.take_one([req.route], "lro_hang") is not None:
            return None, True, delay
        fault = self.faults.take_one([req.route], "lro_fail")
        if fault is None:
            return None, False, delay
        message = fault.message or "The long-running operation failed (injected fault)."
        return message, False, delay

    def _hold_stale(
        self, req: Request, key: tuple[str, str, str], before: dict[str, Any] | None
    ) -> None:
        """Reads of ``key`` answer ``before`` for a while, if a ``stale`` fault says so."""
        fault = self.faults.take_one([req.route], "stale")
        if fault is not None:
            self.state.hold_stale(("arm", *key), copy.deepcopy(before), fault.seconds)

    def _readable(self, key: tuple[str, str, str]) -> dict[str, Any] | None:
        """The resource as reads answer it: a stale view's, else the stored one (or None)."""
        view = self.state.stale(("arm", *key))
        if view is not None:
            before: dict[str, Any] | None = view.before
            return before
        svc = self.state.arm.get(key)
        return svc.resource if svc is not None else None

    @staticmethod
    def _read_only(svc: ArmService) -> bool:
        return ci_get(svc.properties, "readOnly") is True

    def _refuse_read_only(self, svc: ArmService) -> None:
        if self._read_only(svc):
            raise Reply(
                arm_error(
                    409,
                    "WebServiceIsReadOnly",
                    f"The web service '{svc.name}' is read-only: it can no longer be updated "
                    "or patched, only removed.",
                )
            )

    def _body(self, req: Request) -> dict[str, Any]:
        body = req.json(error=lambda m: arm_error(400, "InvalidRequestContent", m))
        if not isinstance(body, dict):
            raise Reply(arm_error(400, "InvalidRequestContent", "The body must be a JSON object."))
        props = ci_get(body, "properties")
        if not isinstance(props, dict):
            raise Reply(self._bad_request("The request body must contain 'properties'."))
        if not ci_get(props, "packageType"):
            raise Reply(
                self._bad_request(
                    "The required property 'properties.packageType' is missing; it is the "
                    'discriminator of WebServiceProperties (use "Graph").'
                )
            )
        if str(ci_get(props, "packageType")) != "Graph":
            raise Reply(
                self._bad_request(
                    f"packageType '{ci_get(props, 'packageType')}' is not supported; use 'Graph'."
                )
            )
        return body

    @staticmethod
    def _require_create_secrets(body: Mapping[str, Any]) -> None:
        """Refuse a create without the storage key or the commitment plan (GUESS: codes)."""
        props = ci_get(body, "properties")
        props = props if isinstance(props, Mapping) else {}
        storage = ci_get(props, "storageAccount")
        storage = storage if isinstance(storage, Mapping) else {}
        plan = ci_get(props, "commitmentPlan")
        plan_id = ci_get(plan, "id") if isinstance(plan, Mapping) else None
        problems: list[dict[str, str]] = []
        if not ci_get(storage, "name") or not ci_get(storage, "key"):
            problems.append(
                {
                    "code": "MissingStorageAccountKey",
                    "message": "properties.storageAccount needs its name and key to create a "
                    "web service (a GET does not return the key: add it back).",
                }
            )
        if not plan_id:
            problems.append(
                {
                    "code": "MissingCommitmentPlan",
                    "message": "properties.commitmentPlan.id is required to create a web "
                    "service (a GET does not return it: add it back).",
                }
            )
        elif "/providers/microsoft.machinelearning/commitmentplans/" not in str(plan_id).lower():
            problems.append(
                {
                    "code": "InvalidCommitmentPlanId",
                    "message": f"properties.commitmentPlan.id {str(plan_id)!r:.200} is not the "
                    "ARM id of a Microsoft.MachineLearning/commitmentPlans resource.",
                }
            )
        if problems:
            raise Reply(
                arm_error(
                    400,
                    "BadRequest",
                    "The web service cannot be created: "
                    + ", ".join(p["code"] for p in problems)
                    + " (see the details).",
                    details=problems,
                )
            )

    def _inline_payloads(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` with a ``payloadsInBlobStorage`` graph read from its blob and made inline.

        The blob is read before any state changes, outside the state lock. A body whose
        graph is inline is returned as it is.
        """
        props = ci_get(body, "properties")
        if not isinstance(props, Mapping) or ci_get(props, "payloadsInBlobStorage") is not True:
            return body
        location = ci_get(props, "payloadsLocation")
        if not isinstance(location, Mapping) or not ci_get(location, "uri"):
            raise Reply(
                self._bad_request(
                    "payloadsInBlobStorage is true but properties.payloadsLocation.uri is "
                    "missing: give the blob that holds the assets, input, output, package, "
                    "parameters and exampleRequest."
                )
            )
        storage = ci_get(props, "storageAccount")
        payloads = read_payloads(location, storage if isinstance(storage, Mapping) else None)
        out = {k: v for k, v in body.items() if k.lower() != "properties"}
        out["properties"] = inline_payloads(props, payloads)
        return out

    # -- handlers ----------------------------------------------------------------------

    def operations(self, req: Request) -> Response:
        """``Operations_List``."""
        self._check(req)
        value = [
            {
                "name": f"Microsoft.MachineLearning/{name}",
                "display": {
                    "provider": "Microsoft Machine Learning",
                    "resource": name.split("/")[0],
                    "operation": name,
                    "description": text,
                },
            }
            for name, text in _OPERATIONS
        ]
        return json_response(200, {"value": value})

    def get(self, req: Request) -> Response:
        """``WebServices_Get`` (``?region=`` needs CreateRegionalBlob for other regions)."""
        self._check(req)
        with self.state.locked():
            svc = self._find(req)
            resource = self._readable(self._key(req))
            if resource is None:
                return self._not_found(req)
            region = req.arg("region")
            regions = {svc.region, *svc.regions} if svc is not None else set()
            if region and normalize_region(region) not in regions:
                return arm_error(
                    404,
                    "NotFound",
                    "The specified resource was not found.",
                    details=[
                        {
                            "code": "PerRegionPayloadNotFound",
                            "message": (
                                f"Web Service Definition for region {normalize_region(region)} "
                                "was not found. Please use the same URL making a POST call and "
                                "wait for it succeeded, then try GET again."
                            ),
                        }
                    ],
                )
            return json_response(200, service_view(resource))

    def put(self, req: Request) -> Response:
        """``WebServices_CreateOrUpdate``: 201 create / 200 update, long-running."""
        version = self._check(req)
        body = self._body(req)
        sub, rg, name = req.params["sub"], req.params["rg"], req.params["name"]
        if not name or len(name) > 127:
            return self._bad_request("The web service name must be 1 to 127 characters.")
        body = self._inline_payloads(body)
        with self.state.locked():
            existing = self._find(req)
            if existing is not None:
                self._refuse_read_only(existing)
            elif self.require_create_secrets:
                self._require_create_secrets(body)
            location = ci_get(body, "location") or (existing and existing.resource.get("location"))
            if not location:
                return arm_error(
                    400, "LocationRequired", "The location property is required for this resource."
                )
            fail, hang, delay = self._lro_fault(req)
            resource, service_id = self._new_resource(
                req.base_url, (sub, rg, name), body, existing, str(location)
            )
            if existing is None:
                self._hold_stale(req, self._key(req), None)
                return self._create(
                    req, version, resource, service_id, (sub, rg, name), (fail, hang, delay)
                )
            self.state.finish_pending(existing)
            self._hold_stale(req, existing.key, existing.resource)
            prev_state = existing.properties.get("provisioningState", "Succeeded")
            existing.properties["provisioningState"] = "Provisioning"
            target = existing

            def apply() -> None:
                resource["properties"]["provisioningState"] = "Succeeded"
                target.resource = resource
                target.region = normalize_region(str(location))

            def restore() -> None:
                target.properties["provisioningState"] = prev_state

            op = self.state.start_operation(
                subscription_id=sub,
                region=str(location),
                api_version=version,
                on_success=apply,
                on_failure=restore,
                fail_message=fail,
                resource_key=existing.key,
                hang=hang,
                delay=delay,
            )
            view = write_view(resource, put=True, payloads_member=version != "2016-05-01-preview")
            return json_response(200, view, self._lro_headers(req, op))

    @staticmethod
    def _new_resource(
        base_url: str,
        where: tuple[str, str, str],
        body: Mapping[str, Any],
        existing: ArmService | None,
        location: str,
    ) -> tuple[dict[str, Any], str]:
        sub, rg, name = where
        resource: dict[str, Any] = {
            "id": f"/subscriptions/{sub}/resourceGroups/{rg}{_PROVIDER}/webServices/{name}",
            "name": name,
            "type": RESOURCE_TYPE,
            "location": display_region(location),
            "tags": copy.deepcopy(ci_get(body, "tags") or {}),
        }
        for key, value in body.items():
            if key.lower() not in {"id", "name", "type", "location", "tags", "properties"}:
                resource[key] = copy.deepcopy(value)
        props: dict[str, Any] = copy.deepcopy(ci_get(body, "properties"))
        resource["properties"] = props
        now = now_iso()
        for ro in ("createdOn", "modifiedOn", "provisioningState", "swaggerLocation"):
            ci_pop(props, ro)
        props["createdOn"] = (
            existing.properties.get("createdOn", now) if existing is not None else now
        )
        props["modifiedOn"] = now
        props["provisioningState"] = "Provisioning"
        service_id = existing.service_id if existing is not None else new_id()
        sub_nodash = sub.replace("-", "")
        props["swaggerLocation"] = (
            f"{base_url}/subscriptions/{sub_nodash}/services/{service_id}/swagger.json"
        )
        if not isinstance(ci_get(props, "keys"), Mapping) or not ci_get(props["keys"], "primary"):
            old = existing.keys if existing is not None else {}
            ci_pop(props, "keys")
            props["keys"] = {
                "primary": old.get("primary") or new_key(),
                "secondary": old.get("secondary") or new_key(),
            }
        props.setdefault("payloadsInBlobStorage", False)
        return resource, service_id

    def _create(
        self,
        req: Request,
        version: str,
        resource: dict[str, Any],
        service_id: str,
        where: tuple[str, str, str],
        lro: tuple[str | None, bool, float | None],
    ) -> Response:
        sub, rg, name = where
        fail, hang, delay = lro
        svc = ArmService(
            subscription_id=sub,
            resource_group=rg,
            name=name,
            service_id=service_id,
            resource=resource,
            region=normalize_region(str(resource["location"])),
            created=self.state.next_arm_order(),
        )
        self.state.arm[svc.key] = svc

        def apply() -> None:
            svc.properties["provisioningState"] = "Succeeded"

        def remove() -> None:
            if self.state.arm.get(svc.key) is svc:
                del self.state.arm[svc.key]

        op = self.state.start_operation(
            subscription_id=sub,
            region=str(resource["location"]),
            api_version=version,
            on_success=apply,
            on_failure=remove,
            fail_message=fail,
            resource_key=svc.key,
            hang=hang,
            delay=delay,
        )
        view = write_view(resource, put=True, payloads_member=version != "2016-05-01-preview")
        log.info("ARM web service %s/%s created", rg, name)
        return json_response(201, view, self._lro_headers(req, op))

    def patch(self, req: Request) -> Response:
        """``WebServices_Patch``: recursive merge (keys included), long-running.

        Members left empty (``{}``) are dropped, and the service keeps its location.
        """
        version = self._check(req)
        body = self._inline_payloads(self._body(req))
        with self.state.locked():
            svc = self._find(req)
            if svc is None:
                return self._not_found(req)
            self._refuse_read_only(svc)
            self.state.finish_pending(svc)
            fail, hang, delay = self._lro_fault(req)
            self._hold_stale(req, svc.key, svc.resource)
            merged = copy.deepcopy(svc.resource)
            patch = {
                k: v for k, v in body.items() if k.lower() not in {"id", "name", "type", "location"}
            }
            props_patch = copy.deepcopy(ci_get(patch, "properties"))
            for ro in ("createdOn", "modifiedOn", "provisioningState", "swaggerLocation"):
                ci_pop(props_patch, ro)
            patch = {**{k: v for k, v in patch.items() if k.lower() != "properties"}}
            patch["properties"] = props_patch
            merge(merged, patch)
            drop_empty_members(merged["properties"])
            merged["properties"]["modifiedOn"] = now_iso()
            prev_state = svc.properties.get("provisioningState", "Succeeded")
            svc.properties["provisioningState"] = "Provisioning"

            def apply() -> None:
                merged["properties"]["provisioningState"] = "Succeeded"
                svc.resource = merged

            def restore() -> None:
                svc.properties["provisioningState"] = prev_state

            op = self.state.start_operation(
                subscription_id=svc.subscription_id,
                region=str(svc.resource.get("location") or svc.region),
                api_version=version,
                on_success=apply,
                on_failure=restore,
                fail_message=fail,
                resource_key=svc.key,
                hang=hang,
                delay=delay,
            )
            view = write_view(merged, put=False)
            return json_response(200, view, self._lro_headers(req, op))

    def delete(self, req: Request) -> Response:
        """``WebServices_Remove``: 202 with both operation headers, long-running.

        A service that does not exist is 204 without operation headers, as the live
        service answered (API-NOTES 1.3a; the swagger says 202 even then).
        """
        version = self._check(req)
        with self.state.locked():
            svc = self._find(req)
            if svc is None:
                return Response(status=204)
            fail, hang, delay = self._lro_fault(req)
            self.state.finish_pending(svc)
            target = svc

            def on_success() -> None:
                if self.state.arm.get(target.key) is target:
                    del self.state.arm[target.key]

            op = self.state.start_operation(
                subscription_id=req.params["sub"],
                region=str(svc.resource.get("location") or svc.region),
                api_version=version,
                on_success=on_success,
                fail_message=fail,
                resource_key=svc.key,
                hang=hang,
                delay=delay,
            )
            return Response(status=202, headers=self._lro_headers(req, op, location=True))

    def list_keys(self, req: Request) -> Response:
        """``WebServices_ListKeys`` (a GET)."""
        self._check(req)
        with self.state.locked():
            svc = self._find(req)
            if svc is None:
                return self._not_found(req)
            return json_response(200, svc.keys)

    def regional(self, req: Request) -> Response:
        """``WebServices_CreateRegionalProperties``: 202, long-running; ``region`` required."""
        version = self._check(req)
        region = req.arg("region")
        if not region:
            return arm_error(
                400,
                "MissingRequiredParameter",
                "The query parameter 'region' is required for CreateRegionalBlob.",
            )
        with self.state.locked():
            svc = self._find(req)
            if svc is None:
                return self._not_found(req)
            fail, hang, delay = self._lro_fault(req)
            target = svc

            def apply() -> None:
                target.regions.add(normalize_region(region))

            op = self.state.start_operation(
                subscription_id=svc.subscription_id,
                region=str(svc.resource.get("location") or svc.region),
                api_version=version,
                on_success=apply,
                fail_message=fail,
                hang=hang,
                delay=delay,
            )
            body = {
                "id": svc.name,
                "name": svc.name,
                "type": RESOURCE_TYPE,
                "location": svc.resource.get("location"),
                "properties": {"payloadsInBlobStorage": False, "provisioningState": "Provisioning"},
            }
            return json_response(202, body, self._lro_headers(req, op))

    def _list(self, req: Request, services: list[ArmService]) -> Response:
        services.sort(key=lambda s: s.created)
        token = req.arg("$skiptoken") or "0"
        try:
            start = max(0, int(token))
        except ValueError:
            return self._bad_request(f"The $skiptoken '{token}' is not valid.")
        size = max(1, self.state.page_size)
        page = services[start : start + size]
        views = [self._readable(s.key) for s in page]
        body: dict[str, Any] = {"value": [list_view(v) for v in views if v is not None]}
        if start + size < len(services):
            query = dict(req.query)
            query["$skiptoken"] = str(start + size)
            body["nextLink"] = f"{req.base_url}{urllib.parse.quote(req.path)}?" + (
                urllib.parse.urlencode(query, safe="$")
            )
        return json_response(200, body)

    def list_sub(self, req: Request) -> Response:
        """``WebServices_ListBySubscriptionId``."""
        self._check(req)
        sub = req.params["sub"].lower()
        with self.state.locked():
            found = [s for s in self.state.arm.values() if s.subscription_id.lower() == sub]
            return self._list(req, found)

    def list_rg(self, req: Request) -> Response:
        """``WebServices_ListByResourceGroup``."""
        self._check(req)
        sub, rg = req.params["sub"].lower(), req.params["rg"].lower()
        with self.state.locked():
            found = [
                s
                for s in self.state.arm.values()
                if s.subscription_id.lower() == sub and s.resource_group.lower() == rg
            ]
            return self._list(req, found)

    def op_status(self, req: Request) -> Response:
        """The ``operationsStatus`` document of a long-running operation."""
        self._check(req)
        with self.state.locked():
            op = self.state.operations.get(req.params["op"])
            if op is None:
                return arm_error(404, "NotFound", f"Operation {req.params['op']} was not found.")
            return json_response(200, op.document())

    def op_result(self, req: Request) -> Response:
        """The ``operationresults`` URL of a DELETE: 202 while running, then 204."""
        self._check(req)
        with self.state.locked():
            op = self.state.operations.get(req.params["op"])
            if op is None:
                return arm_error(404, "NotFound", f"Operation {req.params['op']} was not found.")
            if not op.done:
                headers = self._lro_headers(req, op, location=True)
                headers["Retry-After"] = "1"
                return Response(status=202, headers=headers)
            if op.error:  # Failed or Canceled
                return arm_error(500, op.error["code"], op.error["message"])
            return Response(status=204)

    def create_now(
        self, base_url: str, where: tuple[str, str, str], body: Mapping[str, Any]
    ) -> ArmService:
        """Create (or replace) a web service at once, without an operation (for seeding)."""
        location = display_region(str(ci_get(body, "location") or "South Central US"))
        resource, service_id = self._new_resource(base_url, where, body, None, location)
        resource["properties"]["provisioningState"] = "Succeeded"
        sub, rg, name = where
        svc = ArmService(
            subscription_id=sub,
            resource_group=rg,
            name=name,
            service_id=service_id,
            resource=resource,
            region=normalize_region(location),
            created=self.state.next_arm_order(),
        )
        with self.state.lock:
            self.state.arm[svc.key] = svc
        return svc


def runtime_base(base_url: str, svc: ArmService) -> str:
    """The BES/RRS base URL of a New web service (the base of its swaggerLocation)."""
    sub = svc.subscription_id.replace("-", "")
    return f"{base_url}/subscriptions/{sub}/services/{svc.service_id}"
