"""OnlineEndpointTarget's pure parts: blob <-> datastore URI, version names, answers."""

from __future__ import annotations

import pytest

from amlretrain.azureml.endpoints import OnlineEndpointsClient
from amlretrain.azureml.registry import ModelsClient
from amlretrain.azureml.scoring import _table
from amlretrain.azureml.targets import (
    OnlineEndpointTarget,
    blob_of_datastore_uri,
    datastore_uri,
    version_name,
)
from amlretrain.blobs import BlobRef
from amlretrain.credentials import StaticTokenCredential
from amlretrain.errors import ConfigurationError, ServiceError

ACCOUNT = "https://acct.blob.core.windows.net/"
AZURITE = "http://127.0.0.1:10000/devstoreaccount1/"


def blob(url: str) -> BlobRef:
    return BlobRef.from_url(url)


def test_a_blob_of_the_datastore_container_is_a_datastore_path_without_its_sas() -> None:
    ref = blob(f"{ACCOUNT}workspaceblobstore/runs/7/model.json?sv=1&sig=secret")
    uri = datastore_uri(ref)
    assert uri == "azureml://datastores/workspaceblobstore/paths/runs/7/model.json"
    assert "secret" not in uri
    custom = blob(f"{ACCOUNT}azureml-blobstore-1234/m.json")
    assert (
        datastore_uri(custom, datastore="workspaceblobstore", container="azureml-blobstore-1234")
        == "azureml://datastores/workspaceblobstore/paths/m.json"
    )


def test_a_datastore_path_maps_back_to_the_same_blob() -> None:
    for url in (
        f"{ACCOUNT}workspaceblobstore/runs/7/model.json",
        f"{AZURITE}workspaceblobstore/a%20b/model.json",
    ):
        ref = blob(url)
        back = blob_of_datastore_uri(datastore_uri(ref), ref.base_location)
        assert back.url == ref.url and back.sas_token == ""
    long = (
        "azureml://subscriptions/s/resourceGroups/rg/workspaces/ws/datastores/"
        "WorkspaceBlobStore/paths/m/model.json"
    )
    assert blob_of_datastore_uri(long, ACCOUNT, container="c").url == f"{ACCOUNT}c/m/model.json"


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("azureml://jobs/j/outputs/model/paths/model.json", "not an azureml://datastores"),
        ("azureml://datastores/other/paths/m.json", "not in 'workspaceblobstore'"),
        ("runs:/abc/model", "not an azureml://datastores"),
    ],
)
def test_other_model_uris_are_no_blob_of_the_datastore(uri: str, why: str) -> None:
    with pytest.raises(ConfigurationError, match=why):
        blob_of_datastore_uri(uri, ACCOUNT)


def test_another_container_or_an_ilearner_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigurationError, match="container 'models'"):
        datastore_uri(blob(f"{ACCOUNT}models/m.json"))
    with pytest.raises(ConfigurationError, match=r"\.ilearner.*no loader"):
        datastore_uri(blob(f"{ACCOUNT}workspaceblobstore/m/model.ilearner?sig=s3cr3t"))


def test_the_version_name_is_the_blob_url_hashed_whatever_its_sas() -> None:
    a = blob(f"{ACCOUNT}workspaceblobstore/runs/7/model.json?sig=1")
    b = blob(f"{ACCOUNT}workspaceblobstore/runs/7/model.json?sig=2")
    c = blob(f"{ACCOUNT}workspaceblobstore/runs/8/model.json")
    assert version_name(a) == version_name(b) == version_name(a.url)
    assert version_name(a) != version_name(c)
    assert len(version_name(a)) == 12 and int(version_name(a), 16) >= 0


def test_a_scoring_answer_becomes_one_table() -> None:
    result = _table(
        [
            {"Scored Labels": ">50K", "Scored Probabilities": 0.9},
            {"Scored Labels": "<=50K", "Scored Probabilities": 0.1},
        ]
    )
    assert result.columns == ("Scored Labels", "Scored Probabilities")
    assert result.rows == ((">50K", 0.9), ("<=50K", 0.1))
    assert result.first.records()[1] == {"Scored Labels": "<=50K", "Scored Probabilities": 0.1}
    with pytest.raises(ServiceError):
        _table("oops")
    with pytest.raises(ServiceError):
        _table([1, 2])


def clients(ws: str = "ws") -> tuple[OnlineEndpointsClient, ModelsClient]:
    cred = StaticTokenCredential("t")
    return OnlineEndpointsClient(cred, "s", "rg", "ws"), ModelsClient(cred, "s", "rg", ws)


def test_the_target_refuses_a_wrong_configuration() -> None:
    eps, models = clients()
    target = OnlineEndpointTarget(eps, models, "census", datastore_account_url=ACCOUNT)
    assert target.key == (
        "azureml:/subscriptions/s/resourceGroups/rg/providers/"
        "Microsoft.MachineLearningServices/workspaces/ws/onlineEndpoints/census"
    )
    assert target.label == "ws/census"
    with pytest.raises(ConfigurationError, match="storage account"):
        target.model_uri(blob(f"{AZURITE}workspaceblobstore/m.json"))
    with pytest.raises(ConfigurationError, match="two different"):
        OnlineEndpointTarget(
            eps, models, "census", datastore_account_url=ACCOUNT, deployment_names=("a", "A")
        )
    with pytest.raises(ConfigurationError, match="one workspace"):
        OnlineEndpointTarget(eps, clients("other")[1], "census", datastore_account_url=ACCOUNT)
    with pytest.raises(ConfigurationError, match="not an http"):
        OnlineEndpointTarget(eps, models, "census", datastore_account_url="acct")
