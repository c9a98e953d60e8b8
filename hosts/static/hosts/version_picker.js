// The host form's version picker offers only the chosen image's versions: its autocomplete request carries the
// image (ImageVersionAdmin.get_search_results filters on it), and choosing another image clears a version of the
// previous one. Without an image chosen every version is offered (the site's image applies then).
'use strict';
{
    const $ = django.jQuery;

    $.ajaxPrefilter(function(options) {
        const image = document.getElementById('id_image');
        if (image && image.value && typeof options.data === 'string' && options.data.includes('field_name=image_version')) {
            options.data += '&image=' + encodeURIComponent(image.value);
        }
    });

    $(document).ready(function() {
        $('#id_image').on('change', function() {
            $('#id_image_version').val(null).trigger('change');
        });
    });
}
