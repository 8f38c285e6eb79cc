"""Translates the SAM template into plain CloudFormation, offline, for tests/suite/tests/iac.rs.

    AWS_DEFAULT_REGION=us-east-1 .venv/sam/bin/python infra/ci/sam_translate.py TEMPLATE OUT.json S3_CODE_URI

Runs aws-sam-translator (which ships with aws-sam-cli, hence the .venv/sam interpreter) the way
CloudFormation's AWS::Serverless-2016-10-31 transform would. Two things differ from a real
deployment, both because nothing here may reach AWS:
- every function's CodeUri becomes S3_CODE_URI (what `sam package` would upload); its build
  Metadata (BuildMethod, BuildProperties.Binary) is kept for the test to read;
- the managed-policy loader is a stub: the template names no managed policy, and the translator
  would otherwise call IAM to list them.
"""

import json
import os
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402


class NoManagedPolicies:
    def load(self):
        return {}


def main():
    src, dst, code_uri = sys.argv[1:4]
    with open(src, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = code_uri
    translated = transform(template, {}, NoManagedPolicies())
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(translated, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
