"""ScoringClient: request bodies in both forms, and both response shapes without ``type``."""

from __future__ import annotations

import pytest
import responses
from responses import matchers

from amlretrain.errors import ConfigurationError, ServiceError
from amlretrain.studio.scoring import ScoreResult, ScoringClient

API = "https://ussouthcentral.services.azureml.net/workspaces/ws/services/svc"

TABLE_RESPONSE = {
    "Results": {
        "output1": {
            "type": "table",
            "value": {
                "ColumnNames": ["Scored Labels", "Scored Probabilities"],
                "ColumnTypes": ["String", "Double"],
                "Values": [[">50K", "0.92"], ["<=50K", "0.1"]],
            },
        }
    }
}


@responses.activate
def test_score_sends_the_table_form_and_reads_the_table_response():
    responses.post(
        f"{API}/execute",
        json=TABLE_RESPONSE,
        match=[
            matchers.query_param_matcher({"api-version": "2.0", "details": "true"}),
            matchers.header_matcher({"Authorization": "Bearer KEY"}),
            matchers.json_params_matcher(
                {
                    "Inputs": {
                        "input1": {"ColumnNames": ["age", "sex"], "Values": [["39", "male"]]}
                    },
                    "GlobalParameters": {},
                }
            ),
        ],
    )
    result = ScoringClient(API + "/execute?api-version=2.0&details=true", "KEY").score(
        ["age", "sex"], [["39", "male"]]
    )
    assert result.columns == ("Scored Labels", "Scored Probabilities")
    assert result.rows[0] == (">50K", "0.92")
    assert result.first.types == ("String", "Double")


@responses.activate
def test_score_swagger_form():
    responses.post(
        f"{API}/execute",
        json={"Results": {"output1": [{"Scored Labels": ">50K", "p": 0.9}]}},
        match=[
            matchers.query_param_matcher(
                {"api-version": "2.0", "details": "true", "format": "swagger"}
            ),
            matchers.json_params_matcher(
                {"Inputs": {"data": [{"age": 39, "sex": "male"}]}, "GlobalParameters": {}}
            ),
        ],
    )
    result = ScoringClient(API, "KEY").score(
        ["age", "sex"], [[39, "male"]], input_name="data", swagger=True
    )
    assert result.output("output1").records() == [{"Scored Labels": ">50K", "p": 0.9}]


@pytest.mark.parametrize("kind", ["table", "DataTable", None])
def test_response_parsing_does_not_rely_on_type(kind):
    output = dict(TABLE_RESPONSE["Results"]["output1"])
    if kind is None:
        output.pop("type")
    else:
        output["type"] = kind
    result = ScoreResult.from_response({"results": {"output1": output}, "GlobalParameters": {}})
    assert len(result.rows) == 2


def test_a_response_without_results_is_a_service_error():
    with pytest.raises(ServiceError):
        ScoreResult.from_response({"nothing": 1})


@responses.activate
def test_rows_must_match_columns_before_any_request():
    with pytest.raises(ConfigurationError):
        ScoringClient(API, "KEY").score(["a", "b"], [["1"]])
    assert len(responses.calls) == 0


def test_the_key_is_not_in_repr():
    assert "KEY" not in repr(ScoringClient(API, "KEY"))


@responses.activate
def test_a_key_credential_is_read_at_request_time_so_update_rotates_it():
    from azure.core.credentials import AzureKeyCredential

    body = {"Results": {"output1": [{"Scored Labels": ">50K"}]}}
    for key in ("OLD", "NEW"):
        responses.post(
            f"{API}/execute",
            json=body,
            match=[matchers.header_matcher({"Authorization": f"Bearer {key}"})],
        )
    credential = AzureKeyCredential("OLD")
    client = ScoringClient(API, credential)
    client.score(["age"], [["39"]])
    credential.update("NEW")
    client.score(["age"], [["39"]])
    sent = [call.request.headers["Authorization"] for call in responses.calls]
    assert sent == ["Bearer OLD", "Bearer NEW"]
    assert "OLD" not in repr(client) and "NEW" not in repr(client)


def test_an_empty_key_or_a_non_key_is_refused():
    with pytest.raises(ConfigurationError, match="an API key is required"):
        ScoringClient(API, "")
    with pytest.raises(ConfigurationError, match="AzureKeyCredential"):
        ScoringClient(API, 42)  # type: ignore[arg-type]
