// Images attached to the next message, read locally as data URLs (the form
// vision models take). `options`: notice(text), currentModel(), changed().
(function () {
  "use strict";

  var el = window.PorticoMessages.el;
  var gettext = window.gettext;
  var interpolate = window.interpolate;
  var MAX_IMAGES = 4;
  var MAX_IMAGE_BYTES = 5 * 1024 * 1024;

  window.PorticoAttachments = function (options) {
    var notice = options.notice;
    var currentModel = options.currentModel;
    var attachButton = document.getElementById("attach");
    var fileInput = document.getElementById("file-input");
    var attachmentsBox = document.getElementById("attachments");
    var attachments = [];

    function showModel() {
      options.changed();
    }

    function showAttachments() {
      attachmentsBox.replaceChildren();
      attachments.forEach(function (url, index) {
        var chip = el("span", "attachment");
        var img = el("img");
        img.src = url;
        img.alt = interpolate(gettext("image %s"), [index + 1]);
        var remove = el("button", "link", "✕");
        remove.type = "button";
        remove.setAttribute("aria-label", interpolate(gettext("Remove image %s"), [index + 1]));
        remove.addEventListener("click", function () {
          attachments.splice(index, 1);
          showAttachments();
          showModel();
        });
        chip.append(img, remove);
        attachmentsBox.appendChild(chip);
      });
    }

    function readFile(file) {
      return new Promise(function (resolve, reject) {
        var reader = new FileReader();
        reader.onload = function () {
          resolve(reader.result);
        };
        reader.onerror = reject;
        reader.readAsDataURL(file);
      });
    }

    attachButton.addEventListener("click", function () {
      var model = currentModel();
      if (!model || !model.capabilities.includes("vision")) {
        notice(model
          ? interpolate(gettext("%(model)s cannot read images. Pick a model marked 'vision' to attach images."),
            { model: model.name }, true)
          : gettext("This model cannot read images. Pick a model marked 'vision' to attach images."));
        return;
      }
      fileInput.click();
    });

    fileInput.addEventListener("change", async function () {
      var files = Array.prototype.slice.call(fileInput.files);
      fileInput.value = "";
      for (var i = 0; i < files.length; i++) {
        var file = files[i];
        if (!/^image\/(png|jpeg|gif|webp)$/.test(file.type)) {
          notice(interpolate(gettext("%(file)s: only PNG, JPEG, GIF and WebP images can be attached."),
            { file: file.name }, true));
          continue;
        }
        if (file.size > MAX_IMAGE_BYTES) {
          notice(interpolate(gettext("%(file)s is larger than 5 MB."), { file: file.name }, true));
          continue;
        }
        if (attachments.length >= MAX_IMAGES) {
          notice(interpolate(gettext("At most %s images per message."), [MAX_IMAGES]));
          break;
        }
        attachments.push(await readFile(file));
      }
      showAttachments();
    });

    return {
      list: function () {
        return attachments.slice();
      },
      clear: function () {
        attachments = [];
        showAttachments();
      },
    };
  };
})();
