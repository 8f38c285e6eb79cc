"""Deploys translated templates into a moto server's CloudFormation, for tests/suite/tests/iac.rs.

    .venv/moto/bin/python infra/ci/moto_deploy.py ENDPOINT TEMPLATE.json STACKS.json

STACKS.json is a list of {"name": ..., "parameters": {...}}; every stack is created from the
same template. Prints one JSON document: per stack its status, outputs, resources (logical id ->
type and physical id), and what moto's Lambda keeps for each function: its configuration
(name, timeout, environment variables) and its event source mappings.

moto 5.2.5 cannot take a SAM template as it is, so the caller passes the output of
sam_translate.py, and this script works around the one gap left (shared/notes/tooling.md §4.5):
moto does not implement AWS::Lambda::Url, and any Fn::GetAtt of one (the push URL in the
functions' variables and the outputs) makes CreateStack fail with HTTP 500. Each such reference
is replaced by PLACEHOLDER_URL, a syntactically valid function URL. moto skips the Url resource
itself.
"""

import io
import json
import sys
import time
import zipfile

import boto3

PLACEHOLDER_URL = "https://push.lambda-url.us-east-1.on.aws/"
BUCKET = "lnsync-iac-artifacts"
KEY = "fn.zip"


def replace_url_refs(node, urls):
    if isinstance(node, dict):
        get_att = node.get("Fn::GetAtt")
        if len(node) == 1 and get_att is not None:
            parts = get_att.split(".", 1) if isinstance(get_att, str) else get_att
            if parts and parts[0] in urls:
                return PLACEHOLDER_URL
        sub = node.get("Fn::Sub")
        if len(node) == 1 and sub is not None:
            text = sub if isinstance(sub, str) else sub[0]
            for url in urls:
                text = text.replace("${%s.FunctionUrl}" % url, PLACEHOLDER_URL)
            if isinstance(sub, str):
                return {"Fn::Sub": text}
            return {"Fn::Sub": [text, replace_url_refs(sub[1], urls)]}
        return {k: replace_url_refs(v, urls) for k, v in node.items()}
    if isinstance(node, list):
        return [replace_url_refs(v, urls) for v in node]
    return node


def client(service, endpoint):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def deploy(cfn, lam, template_body, stack):
    name = stack["name"]
    cfn.create_stack(
        StackName=name,
        TemplateBody=template_body,
        Parameters=[
            {"ParameterKey": k, "ParameterValue": str(v)}
            for k, v in stack["parameters"].items()
        ],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.time() + 60
    while True:
        described = cfn.describe_stacks(StackName=name)["Stacks"][0]
        status = described["StackStatus"]
        if not status.endswith("_IN_PROGRESS") or time.time() > deadline:
            break
        time.sleep(0.1)
    result = {
        "name": name,
        "status": status,
        "reason": described.get("StackStatusReason"),
        "outputs": {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])},
        "resources": {},
        "functions": {},
    }
    for r in cfn.describe_stack_resources(StackName=name)["StackResources"]:
        # Resources moto skipped (alarms, the function URL) come back without a type.
        if "ResourceType" not in r:
            continue
        result["resources"][r["LogicalResourceId"]] = {
            "type": r["ResourceType"],
            "physical": r.get("PhysicalResourceId"),
        }
        if r["ResourceType"] == "AWS::Lambda::Function":
            conf = lam.get_function_configuration(FunctionName=r["PhysicalResourceId"])
            mappings = lam.list_event_source_mappings(FunctionName=conf["FunctionName"])
            result["functions"][r["LogicalResourceId"]] = {
                "name": conf["FunctionName"],
                "timeout": conf.get("Timeout"),
                # Lambda keeps every value as a string; moto keeps what CloudFormation passed.
                "environment": {
                    k: v if isinstance(v, str) else json.dumps(v)
                    for k, v in conf.get("Environment", {}).get("Variables", {}).items()
                },
                "event_sources": [
                    {
                        "arn": m.get("EventSourceArn"),
                        "batch_size": m.get("BatchSize"),
                        "function_response_types": m.get("FunctionResponseTypes", []),
                        "maximum_concurrency": m.get("ScalingConfig", {}).get("MaximumConcurrency"),
                    }
                    for m in mappings["EventSourceMappings"]
                ],
            }
    return result


def main():
    endpoint, template_path, stacks_path = sys.argv[1:4]
    with open(template_path, encoding="utf-8") as f:
        template = json.load(f)
    with open(stacks_path, encoding="utf-8") as f:
        stacks = json.load(f)
    urls = {k for k, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::Url"}
    template_body = json.dumps(replace_url_refs(template, urls))

    s3 = client("s3", endpoint)
    s3.create_bucket(Bucket=BUCKET)
    # The code is never run (moto's Lambda invoke needs Docker); it only has to exist.
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\nexit 1\n")
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=code.getvalue())

    cfn = client("cloudformation", endpoint)
    lam = client("lambda", endpoint)
    results = [deploy(cfn, lam, template_body, stack) for stack in stacks]
    json.dump({"placeholder_url": PLACEHOLDER_URL, "stacks": results}, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
