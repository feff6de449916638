"""Imported by app: its own import shows in the chain of what it pulls in."""

import xml.dom.minidom


def pretty() -> str:
    return xml.dom.minidom.parseString("<a><b/></a>").toprettyxml()
