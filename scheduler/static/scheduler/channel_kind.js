"use strict";
// An alert channel's page: only the fieldsets of the kind picked are shown, as it is picked.
// Each such fieldset has the class "scheduler-kind" and one "scheduler-kind-<kind>" per kind
// that uses it. A stored channel's page holds its own kind's fieldsets only (the server
// leaves the others out), and its kind is not an input: nothing to do there.
{
    function update(select) {
        const kind = select.value;
        document.querySelectorAll("fieldset.scheduler-kind").forEach((fieldset) => {
            fieldset.hidden = !(kind && fieldset.classList.contains("scheduler-kind-" + kind));
        });
    }

    function start() {
        const select = document.getElementById("id_kind");
        if (!select || select.tagName !== "SELECT") {
            return;
        }
        select.addEventListener("change", () => update(select));
        update(select);
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", start);
    } else {
        start();
    }
}
