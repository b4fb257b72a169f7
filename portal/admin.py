from django.contrib import admin

admin.site.site_header = "Portico administration"
admin.site.site_title = "Portico"
admin.site.index_title = "Operate Portico"
