"""Readers for the deployment examples: Terraform trees, SAM template, Dockerfile.

Shared by the tests of ``examples/``. Terraform is parsed with python-hcl2
(string quotes stripped, so ``"python3.13"`` reads as ``python3.13`` and an
expression as ``${...}``); the SAM template with cfn-lint's own YAML loader,
which turns ``!Ref``/``!Sub``/``!GetAtt`` into their ``Ref``/``Fn::*``
mappings; the Dockerfile with a small parser of its instructions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
LAMBDA = EXAMPLES / "lambda"
FARGATE = EXAMPLES / "fargate"

_HCL_OPTIONS = hcl2.SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)


@dataclass
class TerraformTree:
    """The blocks of every ``*.tf`` file in one folder, merged by kind and name."""

    folder: Path
    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    text: str = ""

    def resource(self, kind: str, name: str) -> dict[str, Any]:
        return self.resources[kind][name]

    def of_kind(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.resources.get(kind, {})

    def default(self, expression: object) -> Any:
        """The value of ``${var.NAME}`` (its default) or ``${local.NAME}``."""
        if not isinstance(expression, str):
            return expression
        match = re.fullmatch(r"\$\{(var|local)\.(\w+)\}", expression)
        if match is None:
            raise AssertionError(f"not a plain variable or local: {expression}")
        kind, name = match.groups()
        if kind == "local":
            return self.default(self.locals[name])
        return self.variables[name]["default"]

    def policy_statements(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every statement of every aws_iam_policy_document, dynamic ones included."""
        for name, document in self.data.get("aws_iam_policy_document", {}).items():
            for statement in document.get("statement", []):
                yield name, statement
            for dynamic in document.get("dynamic", []):
                for statement in dynamic.get("statement", {}).get("content", []):
                    yield name, statement


def load_terraform(folder: Path) -> TerraformTree:
    tree = TerraformTree(folder)
    texts = []
    for path in sorted(folder.glob("*.tf")):
        text = path.read_text()
        texts.append(text)
        document = hcl2.loads(text, serialization_options=_HCL_OPTIONS)
        for block in document.get("resource", []):
            for kind, named in block.items():
                tree.resources.setdefault(kind, {}).update(named)
        for block in document.get("data", []):
            for kind, named in block.items():
                tree.data.setdefault(kind, {}).update(named)
        for block in document.get("variable", []):
            tree.variables.update(block)
        for block in document.get("locals", []):
            tree.locals.update(block)
        for block in document.get("output", []):
            tree.outputs.update(block)
    tree.text = "\n".join(texts)
    return tree


def load_sam(path: Path = LAMBDA / "template.yaml") -> dict[str, Any]:
    template: dict[str, Any] = cfn_yaml.load(str(path))
    return template


def sam_environment(template: dict[str, Any], **values: str) -> dict[str, str]:
    """The function's variables with parameters at ``values`` or their defaults.

    ``!Ref Param`` becomes ``values[Param]`` or the default; an ``!If`` whose
    condition compares a parameter with its default (all of them here, so
    that the defaults deploy with nothing optional set) is left out, as
    CloudFormation does when it resolves to ``AWS::NoValue``.
    """
    parameters = template["Parameters"]
    function = template["Resources"]["BridgeFunction"]["Properties"]
    environment: dict[str, str] = {}
    for name, value in function["Environment"]["Variables"].items():
        if isinstance(value, str):
            environment[name] = value
        elif "Ref" in value:
            parameter = value["Ref"]
            default = parameters[parameter].get("Default")
            environment[name] = str(values.get(parameter, default))
        elif "Fn::If" in value:
            continue
        else:
            raise AssertionError(f"unexpected value for {name}: {value}")
    return environment


@dataclass
class Instruction:
    keyword: str
    arguments: str


def load_dockerfile(path: Path = FARGATE / "Dockerfile") -> list[list[Instruction]]:
    """The Dockerfile's instructions, one list per build stage (FROM starts one)."""
    stages: list[list[Instruction]] = []
    logical = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1].strip() + " "
            continue
        logical += line
        keyword, _, arguments = logical.partition(" ")
        instruction = Instruction(keyword.upper(), arguments.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
        logical = ""
    return stages


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form CMD, ENTRYPOINT or HEALTHCHECK CMD."""
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def dockerfile_env(stage: list[Instruction]) -> dict[str, str]:
    """The variables set by the stage's ENV instructions (``KEY=VALUE`` form)."""
    environment: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for pair in instruction.arguments.split():
                key, _, value = pair.partition("=")
                environment[key] = value
    return environment


def healthcheck_command(stage: list[Instruction]) -> list[str]:
    """The exec-form command of the stage's HEALTHCHECK."""
    (check,) = [i for i in stage if i.keyword == "HEALTHCHECK"]
    _, _, command = check.arguments.partition("CMD ")
    return exec_form(command)
