from django.urls import path

from chat import api, views

urlpatterns = [
    # The chat is the portal's home page.
    path("", views.chat_page, name="home"),
    path("chat/", views.chat_page, name="chat"),
    path("chat/<int:conversation_id>/", views.chat_page, name="chat_conversation"),
    path(
        "api/conversations/",
        api.ConversationListView.as_view(),
        name="api_conversations",
    ),
    path(
        "api/conversations/<int:conversation_id>/",
        api.ConversationDetailView.as_view(),
        name="api_conversation",
    ),
    path(
        "api/conversations/<int:conversation_id>/export.md",
        api.ConversationExportMarkdownView.as_view(),
        name="api_conversation_export_markdown",
    ),
    path(
        "api/conversations/<int:conversation_id>/export.json",
        api.ConversationExportJsonView.as_view(),
        name="api_conversation_export_json",
    ),
]
