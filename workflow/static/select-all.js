// "本页全选": ticks or clears every row box of the form the box names (data-select-all="<form id>").
document.addEventListener("change", function (event) {
  var box = event.target;
  var form = box.getAttribute && box.getAttribute("data-select-all");
  if (!form) return;
  document.querySelectorAll('input[type="checkbox"][form="' + form + '"][name]').forEach(function (row) {
    if (row !== box && !row.disabled) row.checked = box.checked;
  });
});
