"""Ride-hailing dispatch: driver location ingestion, live H3 driver index, batched matching, surge.

Work in progress (issue 4): the domain pieces and the driver index are in; HTTP/MQTT/WebSocket
surfaces, trips and offers come next. Other modules may import only from here.
"""
