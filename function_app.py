"""PackCloud: one Azure Functions app, one Blueprint per capability.

The settings are read here, at start-up, so a missing or invalid setting stops the app with a
message naming it instead of failing on the first request. Everything the import makes lives as long as
the instance, so it is made with the garbage collector off and then frozen (shared/core/startup.py).
"""

from shared.core.startup import long_lived_objects

with long_lived_objects():
    import azure.functions as func

    from functions import (
        attachments,
        autonumber,
        dataverse_delivery,
        delivery_failed,
        delivery_target,
        dpo_webhook,
        email_events,
        geo_login,
        links,
        mailchimp,
        manage,
        notice,
        privacy,
        registration,
        retention_purge,
        sms,
        sync,
        tenant_auth,
        tracking_pixel,
        webform_capture,
    )
    from shared.core.logs import quiet_request_logs
    from shared.core.settings import get_settings

    settings = get_settings()
    # Before any storage request: client libraries would log request URLs (subject hashes, queries) otherwise.
    quiet_request_logs()

    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    app.register_functions(tracking_pixel.bp)
    app.register_functions(manage.bp)
    app.register_functions(sync.bp)
    app.register_functions(privacy.bp)
    app.register_functions(retention_purge.bp)
    app.register_functions(autonumber.bp)
    app.register_functions(webform_capture.bp)
    app.register_functions(geo_login.bp)
    app.register_functions(tenant_auth.bp)
    app.register_functions(delivery_target.bp)
    app.register_functions(delivery_failed.bp)
    app.register_functions(dataverse_delivery.bp)
    app.register_functions(notice.bp)
    app.register_functions(sms.bp)
    app.register_functions(dpo_webhook.bp)
    app.register_functions(links.bp)
    app.register_functions(email_events.bp)
    app.register_functions(mailchimp.bp)
    app.register_functions(attachments.bp)
    # The registration engine runs in the home deployment only; elsewhere its routes do not exist.
    if "registration" in settings.role:
        app.register_functions(registration.bp)
