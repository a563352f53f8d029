"""``python -m simulator --port 8001 --callback-url http://127.0.0.1:8000/callbacks/wechat``."""

from __future__ import annotations

import argparse
import os

import uvicorn

from simulator.app import create_simulator_app
from simulator.demo import build_demo_state


def main(argv: list[str] | None = None) -> None:
    """Run the simulator standalone with one demo MP account."""
    parser = argparse.ArgumentParser(prog="python -m simulator", description="Local stand-in for WeChat (MP).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--callback-url",
        default=os.environ.get("WECHAT_CALLBACK_URL", "http://127.0.0.1:8000/callbacks/wechat"),
        help="the desk's MP callback URL",
    )
    parser.add_argument("--mode", choices=["plain", "compat", "safe"], default="safe")
    parser.add_argument("--wecom-org", default="", metavar="D,S,E",
                        help="generate a WeCom organisation of D departments, S staff and E external contacts "
                             "(up to 2000,20000,200000) instead of the demo company")
    parser.add_argument("--wecom-callback-base", default="http://127.0.0.1:8000/callbacks/wecom",
                        help="the desk's WeCom callback URLs: <base>/app and <base>/contacts")
    args = parser.parse_args(argv)
    state = build_demo_state(args.callback_url, mode=args.mode)
    from simulator.wecom.orggen import OrgSize, add_default_apps, generate_org, load_demo_org

    add_default_apps(state.wecom, app_callback_url=f"{args.wecom_callback_base}/app",
                     contacts_callback_url=f"{args.wecom_callback_base}/contacts")
    if args.wecom_org:
        generate_org(state.wecom, OrgSize.parse(args.wecom_org))
    else:
        load_demo_org(state.wecom)
    state.public_base_url = f"http://{args.host}:{args.port}"
    print(f"WeChat simulator: {state.public_base_url}/_sim/  (API base {state.public_base_url}/cgi-bin/)")
    uvicorn.run(create_simulator_app(state), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
