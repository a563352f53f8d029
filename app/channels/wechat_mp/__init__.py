"""The WeChat Official Account (公众号) channel.

Callbacks: 接收普通消息 https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html
and 接收事件推送 https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_event_pushes.html;
sending: 客服消息 and 模板消息 through `app.wecom.mp`.
"""
