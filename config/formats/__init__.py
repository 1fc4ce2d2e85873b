"""Django's format modules (``FORMAT_MODULE_PATH``): the times Django renders in the admin
take the shape of :func:`scheduler.formatting.format_time`."""
