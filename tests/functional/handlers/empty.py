"""Does nothing: the emulator's own INIT and invoke overhead."""


def handler(event, context):
    return None
