#!/usr/bin/env python3
"""Used by rootfs_check.sh: reads how the Dockerfile's final stage runs Warren, so the check
runs exactly that instead of a copy that could drift, and checks docker-compose.yml against it.

  docker_spec.py DOCKERFILE COMPOSE_FILE

Prints bash assignments (IMG_ENV, IMG_USER, IMG_ENTRYPOINT, IMG_HEALTHCHECK, ...) for `source`;
inconsistencies go to stderr as "PROBLEM ..." lines and make the exit status 1.
"""

import json
import re
import shlex
import sys


def instructions(path):
    """(INSTRUCTION, arguments) of the last stage, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for raw in open(path, encoding="utf-8"):
        line = raw.rstrip("\n")
        if line.lstrip().startswith("#"):
            continue  # comment lines, also inside a continued instruction, as Docker does
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    last_from = max(i for i, (word, _) in enumerate(out) if word == "FROM")
    return out[: last_from + 1], out[last_from:]


def exec_form(text, what):
    argv = json.loads(text)
    if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
        raise ValueError(f"{what} is not an exec-form JSON array: {text}")
    return argv


def main():
    dockerfile, compose_file = sys.argv[1], sys.argv[2]
    problems = []
    _, stage = instructions(dockerfile)
    env, spec = {}, {"expose": [], "healthcheck": None, "user": None, "entrypoint": None}
    for word, rest in stage:
        if word == "ENV":
            for token in shlex.split(rest):
                key, eq, value = token.partition("=")
                if not eq:
                    raise ValueError(f"ENV in the legacy 'KEY value' form: {rest}")
                env[key] = value
        elif word == "USER":
            spec["user"] = rest
        elif word == "ENTRYPOINT":
            spec["entrypoint"] = exec_form(rest, "ENTRYPOINT")
        elif word == "HEALTHCHECK":
            options, _, command = rest.partition("CMD ")
            spec["healthcheck"] = exec_form(command, "HEALTHCHECK CMD")
            spec["hc_options"] = dict(re.findall(r"--([a-z-]+)=(\S+)", options))
        elif word == "VOLUME":
            spec["volume"] = rest
        elif word == "EXPOSE":
            spec["expose"] += [p.split("/")[0] for p in rest.split()]
        elif word == "STOPSIGNAL":
            spec["stopsignal"] = rest
        elif word == "RUN":
            for flag in ("uid", "gid"):
                m = re.search(rf"--{flag} (\d+)", rest)
                if m:
                    spec[flag] = m.group(1)
        elif word == "COPY" and "--from=" in rest:
            spec["copied_to"] = rest.split()[-1]

    def problem(cond, text):
        if not cond:
            problems.append(text)

    user = spec["user"] or "0"
    problem(re.fullmatch(r"\d+:\d+", user), f"USER {user} is not numeric uid:gid")
    problem(user.split(":")[0] != "0", "USER is root")
    problem(user == f"{spec.get('uid')}:{spec.get('gid')}", f"USER {user} is not the uid:gid the RUN step creates")
    problem(spec["entrypoint"] and spec["entrypoint"][0] == spec.get("copied_to"), "ENTRYPOINT is not the copied binary")
    problem(spec["healthcheck"] is not None, "no HEALTHCHECK CMD")
    problem(spec.get("volume") in (env.get("WARREN_DATA_DIR"), f'["{env.get("WARREN_DATA_DIR")}"]'),
            f"VOLUME {spec.get('volume')} is not WARREN_DATA_DIR {env.get('WARREN_DATA_DIR')}")
    for port in (env.get("WARREN_PORT", "5672"), "5671", "15672", "15692"):
        problem(port in spec["expose"], f"port {port} not in EXPOSE {spec['expose']}")
    problem(spec.get("stopsignal", "SIGTERM") == "SIGTERM", "STOPSIGNAL is not SIGTERM")

    try:
        import yaml
    except ImportError:
        print("# python3 has no yaml module: docker-compose.yml not checked", file=sys.stderr)
    else:
        compose = yaml.safe_load(open(compose_file, encoding="utf-8"))
        services = compose["services"]
        broker = services["warren"]
        problem(broker.get("build") == ".", "the warren service is not built from this Dockerfile")
        published = {p.split(":")[-1].split("/")[0] for p in broker.get("ports", [])}
        problem(published <= set(spec["expose"]), f"published ports {published} not all in EXPOSE")
        for port in (env.get("WARREN_PORT", "5672"), "15672", "15692"):
            problem(port in published, f"port {port} not published by the warren service")
        volume_targets = [v.split(":")[1] for v in broker.get("volumes", [])]
        problem(env.get("WARREN_DATA_DIR") in volume_targets, "WARREN_DATA_DIR is not on a volume")
        named = {v.split(":")[0] for v in broker.get("volumes", [])}
        problem(named & set(compose.get("volumes", {})), "no named volume holds the data dir")
        broker_env = broker.get("environment", {})
        default_user = broker_env.get("WARREN_DEFAULT_USER", "guest")
        problem(default_user != "guest", "compose keeps guest, which other containers reach from non-loopback")
        for name, service in services.items():
            if name == "warren":
                continue
            problem(service.get("depends_on", {}).get("warren", {}).get("condition") == "service_healthy",
                    f"{name} does not wait for warren to be healthy")
            client = service.get("environment", {})
            problem(client.get("AMQP_HOST") == "warren", f"{name} does not connect to the warren service")
            problem(client.get("AMQP_USER") == default_user and client.get("AMQP_PASS") == broker_env.get("WARREN_DEFAULT_PASS"),
                    f"{name} logs in as another user than the broker creates")

    q = shlex.quote
    print("IMG_ENV=(" + " ".join(q(f"{k}={v}") for k, v in env.items()) + ")")
    print(f"IMG_USER={q(user)}")
    print("IMG_ENTRYPOINT=(" + " ".join(map(q, spec["entrypoint"] or [])) + ")")
    print("IMG_HEALTHCHECK=(" + " ".join(map(q, spec["healthcheck"] or [])) + ")")
    print(f"IMG_HC_TIMEOUT={q(spec.get('hc_options', {}).get('timeout', '30s').rstrip('s'))}")
    print(f"IMG_UID={q(spec.get('uid', ''))}")
    print(f"IMG_GID={q(spec.get('gid', ''))}")
    for text in problems:
        print(f"PROBLEM {text}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
