window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  var root = document.documentElement;
  root.setAttribute("data-images-total", String(imgs.length));
  root.setAttribute("data-images-loaded", String(imgs.length - bad.length));
  root.setAttribute("data-images-failed", String(bad.length));
  if (bad.length) {
    var div = document.createElement("div");
    div.className = "banner danger";
    div.textContent = bad.length + " figure(s) failed to load: " +
      bad.map(function (i) { return i.getAttribute("data-file"); }).join(", ");
    document.querySelector("main").prepend(div);
  }
});
