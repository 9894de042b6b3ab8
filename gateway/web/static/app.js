// Progressive enhancement only: every page works without this script.
// 1. A submitted form's buttons are disabled, so a double click sends one request (the
//    form's idempotency key protects the money even without this).
// 2. <time datetime="...Z"> shows the reader's local time; the UTC text stays in `title`.

function disableOnSubmit(form) {
  form.addEventListener("submit", () => {
    // Submit buttons carry no name, so disabling them now changes nothing that is sent.
    for (const button of form.querySelectorAll("button[type=submit], button:not([type])")) {
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
    }
  });
}

function localizeTime(element) {
  const instant = new Date(element.getAttribute("datetime"));
  if (Number.isNaN(instant.getTime())) {
    return;
  }
  const utc = element.textContent;
  element.textContent = instant.toLocaleString(undefined, {
    dateStyle: "medium",
    timeStyle: "medium",
  });
  element.title = utc;
}

for (const form of document.querySelectorAll("form[method=post]")) {
  disableOnSubmit(form);
}
for (const element of document.querySelectorAll("time[datetime]")) {
  localizeTime(element);
}
