"""The WeChat Official Account (公众号, MP) side of the simulator: ``api.weixin.qq.com/cgi-bin/...``.

API index: https://developers.weixin.qq.com/doc/offiaccount/Getting_Started/Overview.html
Routes are collected in ``simulator.mp.routes``; this package init stays empty so that ``simulator.state`` can
import ``simulator.mp.store`` without pulling the routes (which import the state) in a cycle.
"""
